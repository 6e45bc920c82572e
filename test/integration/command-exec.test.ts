/**
 * Command connections, one-off runs (`airlock exec`, pipes) through the real CLI and a real TLS
 * gateway process: input, stdout/stderr apart, exit codes, signals, refusals, 100 MB of output in
 * bounded gateway memory, leak attempts, isolation of the gateway from the command, recordings.
 */
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { replayRecording } from '../../src/protocols/command/replay.js'
import { storeAccess } from '../helpers/audit.js'
import type { TestGateway } from '../helpers/gateway.js'
import { airlock, BIN, childEnv, REPO, residentBytes, spawnAirlock, transcript } from '../helpers/processes.js'
import { ensureShellUser, SHELL_USER, startCommandGateway } from '../helpers/pty.js'
import { findLeaks } from '../helpers/pty-leaks.js'
import { createTestCa } from '../helpers/tls.js'
import { Writable } from 'node:stream'

const API_TOKEN = `at-${randomBytes(18).toString('base64')}`
const DB_PASSWORD = `db-${randomBytes(12).toString('hex')}`
/** Held by the gateway for another connection: no session of `run` may ever see it. */
const OTHER_SECRET = `other-${randomBytes(12).toString('hex')}`
const SECRETS = [API_TOKEN, DB_PASSWORD, OTHER_SECRET]

const commandEnv = { API_TOKEN: { env: 'TEST_API_TOKEN' }, DB_PASSWORD: { file: './db-password' }, GREETING: 'hello' }
let gateway: TestGateway
let cliEnv: NodeJS.ProcessEnv
let keyFile: string
let caDir: string

beforeAll(async () => {
  ensureShellUser()
  caDir = mkdtempSync(join(tmpdir(), 'airlock-ca-'))
  const ca = createTestCa(caDir)
  const cert = ca.issue('gateway', ['127.0.0.1'])
  keyFile = cert.keyFile
  gateway = await startCommandGateway({
    connections: [
      { name: 'run', type: 'command', command: ['sh', '-c'], runAs: SHELL_USER, allowArgs: true, env: commandEnv, access: { groups: ['eng'] } },
      {
        name: 'shell',
        type: 'command',
        command: ['bash', '--norc'],
        runAs: SHELL_USER,
        env: commandEnv,
        guardrails: { deny: [{ pattern: 'rm\\s+-[a-z]*r', message: 'no recursive deletes' }] },
        access: { groups: ['eng'] },
      },
      { name: 'fixed', type: 'command', command: ['echo', 'fixed'], runAs: SHELL_USER, access: { groups: ['eng'] } },
      {
        name: 'other',
        type: 'command',
        command: ['sh', '-c', 'echo other-ready; exec sleep 120'],
        runAs: SHELL_USER,
        env: { OTHER: { env: 'TEST_OTHER_SECRET' } },
        access: { groups: ['eng'] },
      },
      { name: 'masked', type: 'command', command: ['sh', '-c'], runAs: SHELL_USER, allowArgs: true, masking: {}, access: { groups: ['eng'] } },
    ],
    env: { TEST_API_TOKEN: API_TOKEN, TEST_OTHER_SECRET: OTHER_SECRET },
    files: { 'db-password': `${DB_PASSWORD}\n` },
    tls: { cert: cert.certFile, key: cert.keyFile },
  })
  cliEnv = { ...gateway.env('user'), NODE_EXTRA_CA_CERTS: ca.caFile }
})

afterAll(async () => {
  await gateway?.stop()
  // Everything any CLI or the gateway printed, its logs included.
  expect(findLeaks(transcript.join(''), SECRETS)).toEqual([])
  if (gateway) rmSync(gateway.dir, { recursive: true, force: true })
  if (caDir) rmSync(caDir, { recursive: true, force: true })
})

/** A CLI run may take long on a loaded machine; its own timeout only guards against hangs. */
const SLOW = 120_000
const run = (script: string, options: { input?: string } = {}) => airlock(['exec', 'run', '--', script], { env: cliEnv, timeoutMs: SLOW, ...options })

function recordingOf(session: string): string {
  return join(gateway.dir, 'recordings', `${session}.cast`)
}

type AuditRecord = Record<string, unknown> & { type: string; session?: string }

/** The audit records that satisfy `match`, waiting (the store is written off the event loop) until there are some. */
async function auditRecords(match: (record: AuditRecord) => boolean): Promise<AuditRecord[]> {
  const store = await storeAccess(`sqlite:${join(gateway.dir, 'audit.db')}`)
  try {
    for (let attempt = 0; ; attempt++) {
      const found = (await store.rows()).map((row) => JSON.parse(row.record) as AuditRecord).filter(match)
      if (found.length > 0 || attempt === 100) return found
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  } finally {
    await store.close()
  }
}

describe('airlock exec on a command connection', { timeout: 240_000 }, () => {
  it('streams stdin to the command and keeps stdout and stderr apart', async () => {
    const result = await run('tr a-z A-Z; echo to-stderr >&2; echo "$GREETING"', { input: 'abc\ndef\n' })
    expect(result).toMatchObject({ code: 0, stdout: 'ABC\nDEF\nhello\n', stderr: 'to-stderr\n' })
  })

  it('takes input from -i and -f', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-exec-'))
    writeFileSync(join(dir, 'script.sh'), 'echo one\necho two\n')
    const [inline, file] = await Promise.all([
      airlock(['exec', 'shell', '-i', 'echo "$GREETING from $(basename $SHELL) as $(id -un)"'], { env: cliEnv, timeoutMs: SLOW }),
      airlock(['exec', 'shell', '-f', join(dir, 'script.sh')], { env: cliEnv, timeoutMs: SLOW }),
    ])
    expect(inline.stdout).toBe(`hello from sh as ${SHELL_USER}\n`)
    expect(file.stdout).toBe('one\ntwo\n')
    rmSync(dir, { recursive: true })
  })

  it("passes the command's exit status through unchanged", async () => {
    const [ok, failed, killed, missing] = await Promise.all([run('true'), run('exit 42'), run('kill -TERM $$'), run('no-such-program-xyz')])
    expect(ok.code).toBe(0)
    expect(failed.code).toBe(42)
    expect(killed.code).toBe(143)
    expect(missing.code).toBe(127)
    expect(missing.stderr).toMatch(/not found/)
  })

  it('refuses what the connection does not allow, before anything runs', async () => {
    const marker = join(tmpdir(), `airlock-ran-${randomBytes(6).toString('hex')}`)
    const [args, denied, deniedStdin, json] = await Promise.all([
      airlock(['exec', 'fixed', '--', 'extra'], { env: cliEnv, timeoutMs: SLOW }),
      airlock(['exec', 'shell', '-i', `touch ${marker}\nrm -rf /tmp/nothing-here`], { env: cliEnv, timeoutMs: SLOW }),
      airlock(['exec', 'shell'], { env: cliEnv, timeoutMs: SLOW, input: `touch ${marker}; rm  -r /tmp/nothing\n` }),
      airlock(['exec', 'run', '--json', '--', 'true'], { env: cliEnv, timeoutMs: SLOW }),
    ])
    expect(args.code).toBe(2)
    expect(args.stderr).toMatch(/takes no arguments/)
    expect(denied.code).toBe(3)
    expect(denied.stderr).toMatch(/blocked by guardrail deny\[0\]: no recursive deletes/)
    expect(deniedStdin.code).toBe(3)
    expect(json.code).toBe(2)
    expect(existsSync(marker)).toBe(false)
    const blocked = await auditRecords((record) => record.type === 'command.blocked' && record.connection === 'shell')
    expect(blocked.length).toBeGreaterThanOrEqual(2)
    expect(blocked[0]).toMatchObject({ rule: 'deny[0]', message: 'no recursive deletes', where: 'input', user: 'test-user' })
  })

  it('forwards Ctrl-C (SIGINT) to the command and passes its status through', async () => {
    const child = spawnAirlock(['exec', 'run', '--', 'echo started; sleep 30; echo not-reached'], { env: cliEnv, timeoutMs: SLOW })
    await child.waitFor<unknown>((line) => line === 'started', SLOW)
    child.child.kill('SIGINT')
    expect(await child.stop('SIGINT')).toBe(130)
    expect(child.stdout()).not.toContain('not-reached')
  })

  it('carries 100 MB of output with bounded gateway memory, a slow reader stalling the command', async () => {
    const line = 'the quick brown fox jumps over the lazy dog 0123456789\n'
    const total = 100_000_000
    const expected = createHash('sha256')
    for (let sent = 0; sent < total; sent += line.length) expected.update(sent + line.length <= total ? line : line.slice(0, total - sent))

    const gatewayPid = gateway.process.child.pid!
    const baseline = await residentBytes(gatewayPid)
    let peak = baseline
    const sampler = setInterval(() => {
      void residentBytes(gatewayPid).then((rss) => (peak = Math.max(peak, rss)), () => {})
    }, 100)
    const child = spawn(process.execPath, [BIN, 'exec', 'run', '--', `yes '${line.trimEnd()}' | head -c ${total}`], {
      env: childEnv(cliEnv),
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const hash = createHash('sha256')
    let received = 0
    let stalled = false
    const startedAt = Date.now()
    child.stdout.on('data', (chunk: Buffer) => {
      hash.update(chunk)
      received += chunk.length
      if (!stalled && received > 10_000_000) {
        // A slow reader: the command must stall, not the gateway buffer.
        stalled = true
        child.stdout.pause()
        setTimeout(() => child.stdout.resume(), 3_000)
      }
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    clearInterval(sampler)
    const seconds = (Date.now() - startedAt) / 1000
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(received).toBe(total)
    expect(hash.digest('hex')).toBe(expected.digest('hex'))
    console.log(`100 MB through exec: ${seconds.toFixed(1)} s (3 s stalled), gateway RSS ${(baseline / 2 ** 20).toFixed(0)} → peak ${(peak / 2 ** 20).toFixed(0)} MiB`)
    expect(peak - baseline).toBeLessThan(96 * 2 ** 20)
  })

  it('masks every leak attempt on the pipes path, in what the client receives and in the recording', async () => {
    const script = [
      'echo "session=$AIRLOCK_SESSION"',
      'env; printenv API_TOKEN; printenv DB_PASSWORD >&2',
      'cat /proc/self/environ; echo',
      'ps eww',
      'printenv API_TOKEN | base64; env | base64; printenv DB_PASSWORD | base64 >&2',
      'printenv API_TOKEN | xxd -p; printf %s "$DB_PASSWORD" | xxd -p | tr a-f A-F',
      'printf %s "$API_TOKEN" | rev; echo',
      // One character at a time, with an escape sequence after each and a pause between them.
      'for ((i = 0; i < ${#API_TOKEN}; i++)); do printf "%s\\033[1m" "${API_TOKEN:i:1}"; sleep 0.02; done; printf "\\033[0m\\n"',
      'for ((i = 0; i < ${#DB_PASSWORD}; i++)); do printf "_\\b%s" "${DB_PASSWORD:i:1}" >&2; done; echo >&2',
      // One character at a time with more than 64 KiB of escape sequences after each (the hold limit).
      'pad=$(printf "\\033[0m%.0s" $(seq 17000)); for ((i = 0; i < ${#API_TOKEN}; i++)); do printf "%s%s" "${API_TOKEN:i:1}" "$pad"; done; echo',
      'echo done-leaks',
    ].join('\n')
    const result = await airlock(['exec', 'shell', '-i', script], { env: cliEnv, timeoutMs: SLOW })
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('done-leaks')
    expect(result.stdout).toMatch(/API_TOKEN=\[CREDENTIAL\]/)
    expect(result.stderr).toContain('[CREDENTIAL]')
    expect(findLeaks(result.stdout, SECRETS)).toEqual([])
    expect(findLeaks(result.stderr, SECRETS)).toEqual([])
    const session = /session=(ses_\S+)/.exec(result.stdout)![1]!
    const recording = readFileSync(recordingOf(session), 'utf8')
    expect(recording).toContain('[CREDENTIAL]')
    expect(findLeaks(recording, SECRETS)).toEqual([])
    expect(findLeaks(JSON.parse(`[${recording.trim().split('\n').slice(1).join(',')}]`).map((event: unknown[]) => event[2]).join(''), SECRETS)).toEqual([])
  })

  it("cannot reach the gateway's environment, command line, config, TLS key, audit store or signal it, whatever encoding it applies", async () => {
    const pid = gateway.process.child.pid!
    const targets = [`/proc/${pid}/environ`, `/proc/${pid}/cmdline`, `/proc/${pid}/mem`, gateway.configFile, keyFile, join(gateway.dir, 'audit.db'), join(gateway.dir, 'db-password')]
    const attempt = [
      `for f in ${targets.join(' ')}; do echo "== $f"; cat "$f" 2>&1 | head -c 65536; echo; done`,
      `ls -la ${gateway.dir} 2>&1`,
      `kill -0 ${pid} 2>&1 && echo SIGNAL-DELIVERED || echo SIGNAL-REFUSED`,
      `kill -TERM ${pid} 2>&1 || true`,
      `grep -l "${OTHER_SECRET.slice(0, 10)}" /proc/*/environ 2>/dev/null | head -3; echo scan-done`,
    ].join('; ')
    // A session of `other` is alive while the scan runs: its environment holds OTHER_SECRET.
    const other = spawnAirlock(['exec', 'other'], { env: cliEnv, timeoutMs: SLOW })
    let result
    try {
      await other.waitFor<unknown>((line) => line === 'other-ready', SLOW)
      expect(environsHolding(`OTHER=${OTHER_SECRET}`).length, 'the other session holds its secret in a live process').toBeGreaterThan(0)
      result = await run(`(${attempt}) | gzip -c | base64 -w0`)
      expect(environsHolding(`OTHER=${OTHER_SECRET}`).length, 'still alive after the scan').toBeGreaterThan(0)
    } finally {
      await other.stop('SIGTERM')
    }
    expect(result.code).toBe(0)
    const seen = gunzipSync(Buffer.from(result.stdout.trim(), 'base64')).toString('utf8')
    expect(seen).toContain('SIGNAL-REFUSED')
    expect(seen).toContain('scan-done')
    for (const secret of SECRETS) expect(seen).not.toContain(secret)
    expect(seen).not.toMatch(/BEGIN [A-Z ]*PRIVATE KEY|SQLite format|serviceTokens|sha256:/)
    expect(seen).not.toContain(gateway.tokens.user)
    for (const target of targets) expect(seen).toMatch(new RegExp(`== ${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n[^\\n]*(No such file|Permission denied)`))
    expect(gateway.process.child.exitCode).toBeNull()
    expect((await run('echo still-serving')).stdout).toBe('still-serving\n')
  })

  it('records a session that replays identically and holds no secret', async () => {
    const result = await run('echo "session=$AIRLOCK_SESSION"; for i in 1 2 3; do echo "line $i ☃"; done; echo "token=$API_TOKEN"; printf "no newline"')
    expect(result.code).toBe(0)
    const session = /session=(ses_\S+)/.exec(result.stdout)![1]!
    const chunks: Buffer[] = []
    const out = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk)
        callback()
      },
    })
    const replay = await replayRecording(recordingOf(session), out, { speed: Infinity })
    expect(Buffer.concat(chunks).toString('utf8')).toBe(result.stdout)
    expect(result.stdout).toContain('token=[CREDENTIAL]')
    expect(replay.markers).toEqual(['exit 0'])
    expect(findLeaks(readFileSync(recordingOf(session)), SECRETS)).toEqual([])

    // The audit record points at the recording, and says what ran.
    const [start] = await auditRecords((record) => record.type === 'session.start' && record.session === session)
    expect(start).toMatchObject({ connection: 'run', command: { mode: 'pipes', args: [expect.stringContaining('token=$API_TOKEN')] } })
    const [end] = await auditRecords((record) => record.type === 'session.end' && record.session === session)
    const file = readFileSync(recordingOf(session))
    expect(end).toMatchObject({ recording: { path: recordingOf(session), sha256: createHash('sha256').update(file).digest('hex'), bytes: file.length } })
    // The credential canary masked the token once (counted as `canary`).
    expect(end).toMatchObject({ masked: { canary: 1 } })

    // `airlock audit replay`: through the gateway for an admin, offline from the file, refused to others.
    const adminEnv = { ...gateway.env('admin'), NODE_EXTRA_CA_CERTS: cliEnv.NODE_EXTRA_CA_CERTS }
    const [viaGateway, offline, refused, missing] = await Promise.all([
      airlock(['audit', 'replay', session, '--speed', '0'], { env: adminEnv, timeoutMs: SLOW }),
      airlock(['audit', 'replay', '--file', recordingOf(session), '--speed', '1000', '--max-idle', '0.01'], { timeoutMs: SLOW }),
      airlock(['audit', 'replay', session, '--speed', '0'], { env: cliEnv, timeoutMs: SLOW }),
      airlock(['audit', 'replay', 'ses_doesnotexist', '--speed', '0'], { env: adminEnv, timeoutMs: SLOW }),
    ])
    expect(viaGateway).toMatchObject({ code: 0, stdout: result.stdout })
    expect(offline).toMatchObject({ code: 0, stdout: result.stdout })
    expect(refused.code).toBe(5)
    expect(refused.stdout).toBe('')
    expect(missing.code).toBe(2)
    expect(await auditRecords((record) => record.type === 'admin.replay' && record.session === session)).toHaveLength(1)
  })

  it('masks what the detectors find in command output when the connection has a masking section', async () => {
    const [masked, plain] = await Promise.all([
      airlock(['exec', 'masked', '--', 'echo "mail alice@example.com key AKIAIOSFODNN7EXAMPLE"; echo "bob@example.org" >&2'], { env: cliEnv, timeoutMs: SLOW }),
      run('echo "mail alice@example.com"'),
    ])
    expect(masked).toMatchObject({ code: 0, stdout: 'mail [EMAIL] key [CLOUD-KEY]\n', stderr: '[EMAIL]\n' })
    expect(plain.stdout).toBe('mail alice@example.com\n')
    // The audit's session.end says what the output had masked, by detector (stdout and stderr together).
    const [end] = await auditRecords((record) => record.type === 'session.end' && record.connection === 'masked')
    expect(end).toMatchObject({ masked: { email: 2, 'cloud-keys': 1 } })
  })

  it('gateway check reports that sessions get a PID namespace on this host', async () => {
    const check = await airlock(['gateway', 'check', '--config', gateway.configFile], {
      env: { TEST_API_TOKEN: API_TOKEN, TEST_OTHER_SECRET: OTHER_SECRET },
      timeoutMs: SLOW,
    })
    expect(check.stdout).toContain('info: connections[run].isolation: each session gets its own PID and mount namespace')
    expect(check.code).toBe(0)
  })
})

/** Processes whose /proc/PID/environ (read as root, from the test) contains `value`. */
function environsHolding(value: string): string[] {
  const found: string[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/environ`).includes(value)) found.push(entry)
    } catch {
      // gone, or a kernel thread
    }
  }
  return found
}
