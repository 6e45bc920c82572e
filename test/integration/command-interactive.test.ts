/**
 * Command connections, interactive (`airlock connect`): the real CLI under a real pty on the client
 * side, a real gateway process, bash under a pty as the runAs user on the gateway side.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { replayRecording } from '../../src/protocols/command/replay.js'
import type { TestGateway } from '../helpers/gateway.js'
import { transcript } from '../helpers/processes.js'
import { ensureShellUser, type PtyClient, runUnderPty, SHELL_USER, startCommandGateway } from '../helpers/pty.js'
import { findLeaks } from '../helpers/pty-leaks.js'
import { storeAccess } from '../helpers/audit.js'

const API_TOKEN = `at-${randomBytes(18).toString('base64')}`
const DB_PASSWORD = `db-${randomBytes(12).toString('hex')}`
const SECRETS = [API_TOKEN, DB_PASSWORD]
const PROMPT = 'shell$ '

const shell = {
  name: 'shell',
  type: 'command',
  command: ['bash', '--norc'],
  runAs: SHELL_USER,
  env: { API_TOKEN: { env: 'TEST_API_TOKEN' }, DB_PASSWORD: { file: './db-password' }, PS1: PROMPT },
  guardrails: { deny: [{ pattern: 'rm\\s+-[a-z]*r', message: 'no recursive deletes' }] },
  access: { groups: ['eng'] },
}
const gatewayOptions = { connections: [shell], env: { TEST_API_TOKEN: API_TOKEN }, files: { 'db-password': `${DB_PASSWORD}\n` } }
let gateway: TestGateway
const clients: PtyClient[] = []

beforeAll(async () => {
  ensureShellUser()
  gateway = await startCommandGateway(gatewayOptions)
})

afterAll(async () => {
  for (const client of clients) client.pty.kill()
  await gateway?.stop()
  expect(findLeaks(transcript.join(''), SECRETS)).toEqual([])
  if (gateway) rmSync(gateway.dir, { recursive: true, force: true })
})

function connect(target: TestGateway = gateway, args: string[] = []): PtyClient {
  const client = runUnderPty(['connect', 'shell', ...args], { env: target.env('user') })
  clients.push(client)
  return client
}

/** A fresh prompt: at the start of a line, maybe after bash's bracketed-paste switch (not `PS1=shell$ ` in `env`). */
const PROMPT_LINE = new RegExp(`\\n(\\x1b\\[\\?2004h)?${PROMPT.replace('$', '\\$')}`)

/** Types a line and waits for the next prompt after it. */
async function type(client: PtyClient, line: string): Promise<void> {
  const from = client.bytes().length
  client.write(`${line}\r`)
  await client.waitFor(PROMPT_LINE, { from })
}

describe('airlock connect on a command connection', { timeout: 240_000 }, () => {
  it('is a real terminal: prompt, commands, resize, Ctrl-C, exit code, and the terminal restored', async () => {
    const client = connect()
    await client.waitFor(PROMPT)
    await type(client, 'stty size')
    expect(client.text()).toContain('24 80')

    let from = client.bytes().length
    client.resize(100, 40)
    // The resize travels as SIGWINCH → resize message → TIOCSWINSZ; ask until the shell sees it.
    for (let attempt = 0; attempt < 20 && !client.bytes().subarray(from).toString().includes('40 100'); attempt++) {
      await type(client, 'stty size')
    }
    expect(client.bytes().subarray(from).toString()).toContain('40 100')

    from = client.bytes().length
    const sleeper = `sleep ${30 + Math.floor(Math.random() * 1000) / 10}`
    client.write(`${sleeper}; echo not-reached\r`)
    // Ctrl-C once the sleep runs (not while bash is still starting it).
    for (let attempt = 0; attempt < 600 && pgrep(sleeper) === ''; attempt++) await new Promise((resolve) => setTimeout(resolve, 100))
    const interrupted = client.bytes().length
    client.write('\x03')
    // The prompt bash prints after the interrupt, before the next line is typed: typed ahead, the
    // line would be echoed before that prompt, which would end `type` before the line ran.
    await client.waitFor(PROMPT_LINE, { from: interrupted })
    await type(client, 'echo "status=$?"')
    expect(client.bytes().subarray(from).toString()).toContain('status=130')
    expect(client.bytes().subarray(from).toString()).not.toMatch(/\nnot-reached/)

    client.write('exit 3\r')
    const { status, stty } = await client.done()
    expect(status).toBe(3)
    expect(stty).toMatch(/(^|\s)icanon(\s|$)/m)
    expect(stty).toMatch(/(^|\s)echo(\s|$)/m)
  })

  it('masks every leak attempt in what the client receives and in the recording, which replays identically', async () => {
    const client = connect()
    await client.waitFor(PROMPT)
    await type(client, 'echo "session=$AIRLOCK_SESSION"')
    const session = /session=(ses_[A-Za-z0-9_-]+)/.exec(client.text())![1]!
    for (const attempt of [
      'env',
      'printenv API_TOKEN DB_PASSWORD',
      'cat /proc/self/environ; echo',
      'ps eww',
      'printenv API_TOKEN | base64; env | base64',
      'printenv DB_PASSWORD | xxd -p; printf %s "$API_TOKEN" | xxd -p | tr a-f A-F',
      'printf %s "$API_TOKEN" | rev; echo',
      // One character at a time, an escape sequence after each, a pause between them.
      'for ((i = 0; i < ${#API_TOKEN}; i++)); do printf "%s\\033[1m" "${API_TOKEN:i:1}"; sleep 0.02; done; printf "\\033[0m\\n"',
      'for ((i = 0; i < ${#DB_PASSWORD}; i++)); do printf "%s\\b%s" "${DB_PASSWORD:i:1}" "${DB_PASSWORD:i:1}"; done; echo',
      // One character at a time with more than 64 KiB of escape sequences after each (the hold limit).
      'pad=$(printf "\\033[0m%.0s" $(seq 17000)); for ((i = 0; i < ${#API_TOKEN}; i++)); do printf "%s%s" "${API_TOKEN:i:1}" "$pad"; done; echo',
    ]) {
      await type(client, attempt)
    }
    client.write('exit\r')
    const { status } = await client.done()
    expect(status).toBe(0)

    const received = client.bytes()
    expect(received.toString()).toContain('API_TOKEN=[CREDENTIAL]')
    expect(findLeaks(received, SECRETS)).toEqual([])
    const file = join(gateway.dir, 'recordings', `${session}.cast`)
    const recording = readFileSync(file, 'utf8')
    expect(findLeaks(recording, SECRETS)).toEqual([])
    // Input lines are recorded too (they name variables, never hold values).
    expect(recording).toContain('"i","printenv API_TOKEN DB_PASSWORD\\n"')

    const chunks: Buffer[] = []
    await replayRecording(file, new Writable({ write: (chunk: Buffer, _encoding, callback) => void (chunks.push(chunk), callback()) }), { speed: Infinity })
    // The client's own terminal adds a CR before each LF (ONLCR); otherwise the bytes are the same.
    const replayed = Buffer.concat(chunks).toString('utf8').replace(/\n/g, '\r\n')
    expect(replayed.length).toBeGreaterThan(1000)
    expect(received.toString('utf8')).toContain(replayed)
  })

  it('checks submitted lines against deny patterns: the line does not run, the user is told, the recording marks it', async () => {
    const marker = join(tmpdir(), `airlock-ran-${randomBytes(6).toString('hex')}`)
    const client = connect()
    await client.waitFor(PROMPT)
    await type(client, 'echo "session=$AIRLOCK_SESSION"')
    const session = /session=(ses_[A-Za-z0-9_-]+)/.exec(client.text())![1]!
    const from = client.bytes().length
    // Pasted: the refused line and the next command arrive at once, while bash's readline is still
    // busy echoing. A Ctrl-C sent then leaves the line in readline (it would run), and a key sent
    // while bash handles the signal is lost; the gateway waits for the shell to settle around it.
    client.write(`touch ${marker}; rm -rf /tmp/nothing-here\recho still-$((20 + 22))\r`)
    await client.waitFor('[airlock] blocked by guardrail deny[0]: no recursive deletes', { from })
    await client.waitFor('still-42', { from })
    // bash's Ctrl-O (operate-and-get-next) submits a line too.
    const second = client.bytes().length
    client.write(`touch ${marker}; rm -rf /tmp/nothing-here\x0f`)
    await client.waitFor('[airlock] blocked by guardrail deny[0]', { from: second })
    await type(client, 'echo still-here')
    expect(client.bytes().subarray(from).toString()).not.toContain('command not found')
    client.write('exit\r')
    expect((await client.done()).status).toBe(0)
    expect(existsSync(marker)).toBe(false)
    expect(readFileSync(join(gateway.dir, 'recordings', `${session}.cast`), 'utf8')).toContain('"m","blocked by deny[0]"')
    const store = await storeAccess(`sqlite:${join(gateway.dir, 'audit.db')}`)
    try {
      let blocked: Record<string, unknown>[] = []
      for (let attempt = 0; attempt < 100 && blocked.length < 2; attempt++) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 100))
        blocked = (await store.rows()).map((row) => JSON.parse(row.record) as Record<string, unknown>).filter((record) => record.type === 'command.blocked' && record.session === session)
      }
      const refused = expect.objectContaining({ rule: 'deny[0]', where: 'line', text: `touch ${marker}; rm -rf /tmp/nothing-here` })
      expect(blocked).toEqual([refused, refused])
    } finally {
      await store.close()
    }
  })

  it('exits 255 when the tunnel drops, restores the terminal, and the session leaves no process behind', async () => {
    const doomed = await startCommandGateway(gatewayOptions)
    try {
      const client = connect(doomed)
      await client.waitFor(PROMPT)
      // A full-screen program's alternate screen: the CLI must leave it when the tunnel drops.
      await type(client, 'printf "\\033[?1049h\\n"')
      const sleeper = `sleep ${1000 + Math.floor(Math.random() * 1000)}.5`
      // Detached from the shell, as a user would try to leave something running.
      await type(client, `(setsid nohup ${sleeper} >/dev/null 2>&1 &); echo started`)
      expect(client.text()).toContain('started')
      // The detached child may not have become `sleep` yet when the prompt is back (a busy machine).
      let running = pgrep(sleeper)
      for (let attempt = 0; attempt < 50 && running === ''; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        running = pgrep(sleeper)
      }
      expect(running).not.toBe('')
      const dropped = client.bytes().length
      doomed.process.child.kill('SIGKILL')
      const { status, stty } = await client.done()
      expect(status).toBe(255)
      expect(client.bytes().subarray(dropped).toString()).toContain('\x1b[?1049l')
      expect(stty).toMatch(/(^|\s)icanon(\s|$)/m)
      expect(client.text()).toMatch(/tunnel/)
      let left = pgrep(sleeper)
      for (let attempt = 0; attempt < 50 && left !== ''; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        left = pgrep(sleeper)
      }
      expect(left).toBe('')
    } finally {
      await doomed.stop()
      rmSync(doomed.dir, { recursive: true, force: true })
    }
  })
})

function pgrep(pattern: string): string {
  try {
    return execFileSync('pgrep', ['-u', SHELL_USER, '-f', pattern], { encoding: 'utf8' }).trim()
  } catch {
    return ''
  }
}
