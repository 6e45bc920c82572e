import { describe, expect, it } from 'vitest'
import { buildEnvironment, canSwitchUser, launchPlan, namespaceArgv, resolveProgram, resolveUser, signalName } from '../../../../src/protocols/command/launch.js'

const USER = { name: 'ops', uid: 4242, gid: 4243, home: '/home/ops', shell: '/usr/sbin/nologin' }

describe('the command environment', () => {
  it('is built from scratch: nothing of the gateway process leaks in', () => {
    process.env.AIRLOCK_TEST_GATEWAY_ONLY = 'gateway-secret-value'
    try {
      const env = buildEnvironment({ user: USER, mode: 'pty', session: 'ses_1', connectionEnv: { API_TOKEN: 'v' } })
      expect(Object.values(env)).not.toContain('gateway-secret-value')
      expect(Object.keys(env).sort()).toEqual(['AIRLOCK_SESSION', 'API_TOKEN', 'HOME', 'LANG', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER'])
      expect(env).toMatchObject({ HOME: '/home/ops', USER: 'ops', SHELL: '/bin/sh', TERM: 'xterm-256color', API_TOKEN: 'v' })
    } finally {
      delete process.env.AIRLOCK_TEST_GATEWAY_ONLY
    }
  })

  it("lets the connection's env override the base, and says dumb for pipes", () => {
    const env = buildEnvironment({ user: USER, mode: 'pipes', session: 's', connectionEnv: { PATH: '/opt/bin', LANG: 'de_DE.UTF-8' } })
    expect(env).toMatchObject({ PATH: '/opt/bin', LANG: 'de_DE.UTF-8', TERM: 'dumb' })
  })
})

describe('launching', () => {
  it('resolves users through the user database', async () => {
    expect(await resolveUser('root')).toMatchObject({ uid: 0, gid: 0, name: 'root' })
    expect(await resolveUser('no-such-user-airlock-test')).toBeUndefined()
  })

  it('finds programs on the command PATH only', async () => {
    expect(await resolveProgram('sh', '/usr/bin:/bin', '/')).toMatch(/\/sh$/)
    expect(await resolveProgram('sh', '/nonexistent', '/')).toBeUndefined()
    expect(await resolveProgram('./nope', '/usr/bin', '/tmp')).toBeUndefined()
  })

  it('runs the program under a namespace init as the user, or switches user itself', () => {
    const programs = { unshare: '/usr/bin/unshare', setpriv: '/usr/bin/setpriv', sh: '/bin/sh' }
    const argv = namespaceArgv(programs, USER, ['/bin/bash', '--norc'])
    expect(argv.slice(0, 6)).toEqual(['/usr/bin/unshare', '--pid', '--fork', '--kill-child', '--mount-proc', '--'])
    expect(argv).toContain('--clear-groups')
    expect(argv.slice(argv.indexOf('--reuid'), argv.indexOf('--reuid') + 4)).toEqual(['--reuid', '4242', '--regid', '4243'])
    expect(argv.slice(-2)).toEqual(['/bin/bash', '--norc'])
    expect(launchPlan({ mode: 'pid-namespace', ...programs }, USER, ['/bin/true'])).toMatchObject({ file: '/usr/bin/unshare' })
    // Without a namespace still through setpriv: node's own uid/gid switch keeps supplementary groups.
    expect(launchPlan({ mode: 'none', setpriv: '/usr/bin/setpriv' }, USER, ['/bin/true', 'x'])).toEqual({
      file: '/usr/bin/setpriv',
      args: ['--reuid', '4242', '--regid', '4243', '--clear-groups', '--', '/bin/true', 'x'],
    })
  })

  it('knows whether this process may switch users (the tests run as root)', async () => {
    expect(await canSwitchUser()).toBe(process.getuid?.() === 0)
  })

  it('names signals by number', () => {
    expect(signalName(2)).toBe('SIGINT')
    expect(signalName(9)).toBe('SIGKILL')
  })
})
