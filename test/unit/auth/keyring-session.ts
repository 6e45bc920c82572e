/**
 * A private D-Bus session with an unlocked gnome-keyring (Secret Service) for keychain tests, in
 * a throwaway HOME: what a desktop login provides, on a headless machine. Equivalent to
 * `dbus-run-session -- sh -c 'printf pw | gnome-keyring-daemon --unlock --components=secrets; CMD'`,
 * but shared by several CMDs (the CLI processes of one test).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface KeyringSession {
  /** DBUS_SESSION_BUS_ADDRESS (and the keyring's HOME) for processes that should see the keychain. */
  env: { DBUS_SESSION_BUS_ADDRESS: string }
  stop(): Promise<void>
}

export async function startKeyringSession(): Promise<KeyringSession> {
  for (const binary of ['/usr/bin/dbus-daemon', '/usr/bin/gnome-keyring-daemon']) {
    if (!existsSync(binary)) throw new Error(`${binary} is missing: apt-get install -y dbus gnome-keyring`)
  }
  const dir = mkdtempSync(join(tmpdir(), 'airlock-keyring-'))
  mkdirSync(join(dir, 'data'))
  const children: ChildProcess[] = []
  const stop = async (): Promise<void> => {
    for (const child of children.reverse()) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        await once(child, 'exit')
      }
    }
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const bus = spawn('dbus-daemon', ['--session', '--nofork', '--nopidfile', '--print-address=1', `--address=unix:path=${join(dir, 'bus')}`], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    children.push(bus)
    const address = await firstLine(bus, (line) => line.startsWith('unix:'))
    const keyring = spawn('gnome-keyring-daemon', ['--unlock', '--components=secrets', '--foreground'], {
      env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: address, HOME: dir, XDG_DATA_HOME: join(dir, 'data') },
      stdio: ['pipe', 'pipe', 'ignore'],
    })
    children.push(keyring)
    keyring.stdin!.end('airlock-test-keyring-password')
    await firstLine(keyring, (line) => line.startsWith('GNOME_KEYRING_CONTROL='))
    return { env: { DBUS_SESSION_BUS_ADDRESS: address }, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

function firstLine(child: ChildProcess, match: (line: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = ''
    const timer = setTimeout(() => reject(new Error(`${child.spawnfile} did not start`)), 10_000)
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk
      const line = buffer.split('\n').find((candidate) => match(candidate.trim()))
      if (line !== undefined) {
        clearTimeout(timer)
        resolve(line.trim())
      }
    })
    child.once('exit', () => reject(new Error(`${child.spawnfile} exited early`)))
  })
}
