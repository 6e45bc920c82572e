/**
 * The command engine inside the test process (root), driven through a real tunnel by the CLI's
 * session code: the fallback without a PID namespace, the masker plug-in point, connection limits.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { createSecretSource, parseConfig } from '../../src/config/index.js'
import { createLogger, type Gateway, startGateway } from '../../src/gateway/index.js'
import { createCommandEngine } from '../../src/protocols/command/engine.js'
import { runCommandSession } from '../../src/protocols/command/front.js'
import type { OutputMasker } from '../../src/protocols/command/masker.js'
import { openTunnel } from '../../src/tunnel/index.js'
import { VERSION } from '../../src/version.js'
import { makeTokens, writeGatewayConfig } from '../helpers/gateway.js'
import { ensureShellUser, SHELL_USER } from '../helpers/pty.js'

const SECRET = `engine-secret-${Math.random().toString(36).slice(2)}`
const GATEWAY_ENV_CANARY = `gateway-process-only-${Math.random().toString(36).slice(2)}`
let gateway: Gateway
let token: string
/** A group the test gives the gateway process for a moment (numeric: it needs no /etc/group entry). */
const SUPPLEMENTARY_GID = 4242

/** A stand-in for the detector library: masks e-mail addresses (whole lines are enough here). */
function emailMasker(): OutputMasker {
  return {
    write: (chunk) => Buffer.from(chunk.toString('utf8').replace(/[\w.+-]+@[\w-]+\.[\w.]+/g, '[EMAIL]')),
    flush: () => Buffer.alloc(0),
  }
}

/** Holds an unfinished line until output pauses, as the detector stream holds `Password: `. */
function lineHolder(): OutputMasker {
  let held = Buffer.alloc(0)
  const take = (): Buffer => {
    const out = held
    held = Buffer.alloc(0)
    return out
  }
  return {
    write(chunk) {
      held = Buffer.concat([held, chunk])
      const end = held.lastIndexOf(0x0a) + 1
      const out = held.subarray(0, end)
      held = held.subarray(end)
      return out
    },
    flush: take,
    idle: take,
  }
}

beforeAll(async () => {
  ensureShellUser()
  process.env.AIRLOCK_TEST_GATEWAY_CANARY = GATEWAY_ENV_CANARY
  const tokens = makeTokens()
  token = tokens.user
  const { dir } = writeGatewayConfig(
    {
      connections: [
        { name: 'run', type: 'command', command: ['sh', '-c'], runAs: SHELL_USER, allowArgs: true, isolation: 'none', env: { TOKEN: { env: 'ENGINE_SECRET' } }, access: { groups: ['eng'] } },
        { name: 'brief', type: 'command', command: ['sh', '-c'], runAs: SHELL_USER, allowArgs: true, isolation: 'none', maxDuration: '1s', access: { groups: ['eng'] } },
      ],
    },
    tokens,
  )
  const config = parseConfig(parse(readFileSync(`${dir}/airlock.yaml`, 'utf8')), dir)
  gateway = await startGateway({
    config,
    logger: createLogger('warn', new Writable({ write: (_chunk, _encoding, callback) => callback() })),
    secrets: createSecretSource({ ENGINE_SECRET: SECRET }),
    engines: { command: createCommandEngine({ recordingsDir: `${dir}/recordings`, maskers: () => [emailMasker(), lineHolder()] }) },
  })
})

afterAll(async () => {
  delete process.env.AIRLOCK_TEST_GATEWAY_CANARY
  await gateway?.drain(0)
})

async function exec(connection: string, script: string, options: { mode?: 'pipes' | 'pty'; via?: Gateway; token?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const mode = options.mode ?? 'pipes'
  const params = mode === 'pty' ? { mode, cols: 80, rows: 24, args: [script] } : { mode, args: [script] }
  const { transport } = await openTunnel({ gateway: (options.via ?? gateway).url, token: options.token ?? token, connection, clientVersion: VERSION, params })
  let stdout = ''
  let stderr = ''
  const sink = (append: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        append(chunk.toString())
        callback()
      },
    })
  const code = await runCommandSession(transport, { stdout: sink((text) => (stdout += text)), stderr: sink((text) => (stderr += text)) })
  return { code, stdout, stderr }
}

describe('the command engine without a PID namespace', () => {
  it('runs as the user with its own group only, and cannot read or signal the gateway process', async () => {
    const pid = process.pid
    const result = await exec('run', `id -u; id -G; cat /proc/${pid}/environ; kill -0 ${pid} && echo SIGNAL-DELIVERED; echo "token=$TOKEN"`)
    const [uid, groups] = result.stdout.split('\n')
    expect(uid).toBe(readFileSync('/etc/passwd', 'utf8').split('\n').find((line) => line.startsWith(`${SHELL_USER}:`))!.split(':')[2])
    expect(groups!.split(' ')).not.toContain('0')
    expect(result.stderr).toMatch(/Permission denied/)
    expect(result.stderr).toMatch(/Operation not permitted/)
    expect(result.stdout).not.toContain('SIGNAL-DELIVERED')
    expect(result.stdout + result.stderr).not.toContain(GATEWAY_ENV_CANARY)
    expect(result.stdout).toContain('token=[CREDENTIAL]')
    expect(result.stdout).not.toContain(SECRET)
  })

  it("keeps none of the gateway's supplementary groups, on a terminal as on pipes", async () => {
    // Regression: node-pty switched uid/gid without setgroups, so the shell kept the gateway's groups.
    const own = execFileSync('id', ['-G', SHELL_USER], { encoding: 'utf8' }).trim()
    // The gateway (this process) in a supplementary group the user is not in.
    const before = process.getgroups!()
    process.setgroups!([...before, SUPPLEMENTARY_GID])
    let pty, pipes
    try {
      ;[pty, pipes] = await Promise.all([exec('run', 'id -G', { mode: 'pty' }), exec('run', 'id -G')])
    } finally {
      process.setgroups!(before)
    }
    expect(own.split(' ')).not.toContain(String(SUPPLEMENTARY_GID))
    expect(pty.code).toBe(0)
    expect(pty.stdout.trim()).toBe(own)
    expect(pipes.stdout.trim()).toBe(own)
  })

  it('ignores terminal resizes that arrive after the program exited (its terminal is gone)', async () => {
    // Regression: a resize racing the exit reached a closed pty, and ioctl's EBADF crashed the gateway.
    const { transport } = await openTunnel({ gateway: gateway.url, token, connection: 'run', clientVersion: VERSION, params: { mode: 'pty', cols: 80, rows: 24, args: ['sleep 0.3'] } })
    let ended = false
    const resizing = (async () => {
      for (let cols = 40; !ended; cols = cols === 40 ? 120 : 40) {
        transport.control({ type: 'resize', cols, rows: 30 })
        await new Promise((resolve) => setImmediate(resolve))
      }
    })()
    const discard = new Writable({ write: (_chunk, _encoding, callback) => callback() })
    const code = await runCommandSession(transport, { stdout: discard, stderr: discard }).finally(() => (ended = true))
    await resizing
    expect(code).toBe(0)
    expect((await exec('run', 'echo still-serving')).stdout).toBe('still-serving\n')
  })

  it('passes output through further maskers after the canary (the detector plug-in point)', async () => {
    const result = await exec('run', 'echo "mail alice@example.com"; echo "bob@example.org" >&2')
    expect(result).toMatchObject({ code: 0, stdout: 'mail [EMAIL]\n', stderr: '[EMAIL]\n' })
  })

  it('releases what a later masker holds once output pauses (a prompt without a line break)', async () => {
    const { transport } = await openTunnel({ gateway: gateway.url, token, connection: 'run', clientVersion: VERSION, params: { mode: 'pipes', args: ['printf "Password: "; sleep 30'] } })
    let prompted: () => void = () => {}
    const seen = new Promise<void>((resolve) => (prompted = resolve))
    const stdout = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        if (chunk.toString().includes('Password: ')) prompted()
        callback()
      },
    })
    const session = runCommandSession(transport, { stdout, stderr: stdout })
    await seen
    transport.control({ type: 'signal', signal: 'SIGTERM' })
    expect(await session).toBe(143)
  })

  it("ends a command at the connection's maxDuration with a limit error (exit 7)", async () => {
    await expect(exec('brief', 'sleep 20')).rejects.toMatchObject({ code: 'limit', exitCode: 7 })
  })
})

/** Whether this host lets the tests mount a small tmpfs (root with CAP_SYS_ADMIN): a real full disk. */
function tryMount(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

describe('a recording that cannot be written', () => {
  it('ends the session with upstream-unavailable (fail closed) and logs it; the gateway keeps serving', { timeout: 60_000 }, async () => {
    const full = mkdtempSync(join(tmpdir(), 'airlock-full-'))
    const recordings = join(full, 'recordings')
    mkdirSync(recordings, { mode: 0o700 })
    expect(tryMount(recordings, '64k'), 'mounting a 64 KiB tmpfs needs root').toBe(true)
    const logs: string[] = []
    const tokens = makeTokens()
    const { dir } = writeGatewayConfig(
      { connections: [{ name: 'run', type: 'command', command: ['sh', '-c'], runAs: SHELL_USER, allowArgs: true, access: { groups: ['eng'] } }] },
      tokens,
    )
    const small = await startGateway({
      config: parseConfig(parse(readFileSync(`${dir}/airlock.yaml`, 'utf8')), dir),
      logger: createLogger('info', new Writable({ write: (chunk: Buffer, _encoding, callback) => void (logs.push(chunk.toString()), callback()) })),
      secrets: createSecretSource({}),
      engines: { command: createCommandEngine({ recordingsDir: recordings }) },
    })
    try {
      const startedAt = Date.now()
      // Far more output than the disk holds, then a long sleep the error must cut short.
      const outcome = exec('run', "head -c 400000 /dev/zero | tr '\\0' a; sleep 30", { via: small, token: tokens.user })
      await expect(outcome).rejects.toMatchObject({ code: 'upstream-unavailable', exitCode: 7 })
      expect(Date.now() - startedAt).toBeLessThan(25_000)
      expect(logs.join('')).toMatch(/"event":"session.recording.error","code":"ENOSPC"/)
      expect((await exec('run', 'echo still-serving')).stdout).toBe('still-serving\n')
    } finally {
      await small.drain(0)
      execFileSync('umount', [recordings])
      rmSync(full, { recursive: true, force: true })
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
