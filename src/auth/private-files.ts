/**
 * The CLI's own files under the XDG config directory (`$XDG_CONFIG_HOME/airlock`, else
 * `~/.config/airlock`): private directories (0700) and private files (0600) that are written
 * atomically and refused when another user could read them or when they are symbolic links.
 */
import { randomBytes } from 'node:crypto'
import { constants, type Stats } from 'node:fs'
import { chmod, lstat, mkdir, open, rename, unlink } from 'node:fs/promises'
import { homedir } from 'node:os'
import { basename, dirname, isAbsolute, join } from 'node:path'
import { AirlockError } from '../errors.js'

const POSIX = process.platform !== 'win32'

/** `$XDG_CONFIG_HOME/airlock`, or `~/.config/airlock`. */
export function airlockConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME
  if (xdg !== undefined && xdg !== '' && isAbsolute(xdg)) return join(xdg, 'airlock')
  const home = env.HOME !== undefined && env.HOME !== '' ? env.HOME : homedir()
  return join(home, '.config', 'airlock')
}

/**
 * Creates `dir` (and parents) 0700, or tightens an existing one the user owns. A symbolic link or
 * a directory of another user is refused: whoever controls it could read or swap the tokens.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const stats = await lstat(dir)
  if (stats.isSymbolicLink() || !stats.isDirectory()) {
    throw localRefusal(`${dir} is not a directory (a symbolic link?)`, `remove it; airlock creates it with mode 0700`)
  }
  if (!POSIX) return
  if (stats.uid !== process.getuid!()) throw localRefusal(`${dir} belongs to another user`, 'remove it or set XDG_CONFIG_HOME')
  if ((stats.mode & 0o077) !== 0) await chmod(dir, 0o700)
}

/**
 * Checks an existing private directory before anything in it is read: a symbolic link, a directory
 * of another user, or one other users can write to (they could swap the files in it) is refused;
 * one only readable by others is tightened. False when it does not exist.
 */
export async function checkPrivateDir(dir: string): Promise<boolean> {
  let stats: Stats
  try {
    stats = await lstat(dir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw error
  }
  if (stats.isSymbolicLink() || !stats.isDirectory()) {
    throw localRefusal(`refusing ${dir}: it is not a directory (a symbolic link?)`, 'remove it and run `airlock login` again')
  }
  if (!POSIX) return true
  if (stats.uid !== process.getuid!()) throw localRefusal(`refusing ${dir}: it belongs to another user`, 'remove it and run `airlock login` again')
  if ((stats.mode & 0o022) !== 0) {
    throw localRefusal(
      `refusing ${dir}: other users can write to it (mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')})`,
      'the tokens in it may have been replaced: remove it and run `airlock login` again',
    )
  }
  if ((stats.mode & 0o077) !== 0) await chmod(dir, 0o700)
  return true
}

/**
 * Reads a private file without following a symbolic link; `undefined` when it does not exist.
 * A file another user could read (or write) is refused, not silently fixed: it may already have
 * been read.
 */
export async function readPrivateFile(file: string): Promise<string | undefined> {
  let handle
  try {
    handle = await open(file, constants.O_RDONLY | (POSIX ? constants.O_NOFOLLOW : 0))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ELOOP') throw localRefusal(`refusing ${file}: it is a symbolic link`, `delete it and run \`airlock login\` again`)
    throw error
  }
  try {
    checkPrivate(file, await handle.stat())
    return await handle.readFile('utf8')
  } finally {
    await handle.close()
  }
}

/** Writes `content` to `file` (mode 0600) through a temporary file and a rename. */
export async function writePrivateFile(file: string, content: string): Promise<void> {
  const temporary = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (POSIX ? constants.O_NOFOLLOW : 0), 0o600)
  try {
    await handle.writeFile(content, 'utf8')
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await rename(temporary, file)
  } catch (error) {
    await unlink(temporary).catch(() => {})
    throw error
  }
}

/** Removes `file` (a symbolic link itself, never its target); false when there was none. */
export async function removePrivateFile(file: string): Promise<boolean> {
  try {
    await unlink(file)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw error
  }
}

function checkPrivate(file: string, stats: Stats): void {
  if (!stats.isFile()) throw localRefusal(`refusing ${file}: it is not a regular file`, 'delete it and run `airlock login` again')
  if (!POSIX) return
  if (stats.uid !== process.getuid!()) throw localRefusal(`refusing ${file}: it belongs to another user`, 'delete it and run `airlock login` again')
  if ((stats.mode & 0o077) !== 0) {
    throw localRefusal(
      `refusing ${file}: other users can access it (mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')})`,
      'the tokens in it may have been read: delete it and run `airlock login` again',
    )
  }
}

function localRefusal(message: string, hint: string): AirlockError {
  return new AirlockError('unauthenticated', message, { hint })
}
