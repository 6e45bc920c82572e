/** The generated oclif manifest must describe exactly the commands and flags in commands/. */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { expect, it } from 'vitest'
import { REPO } from '../../helpers/processes.js'

function commandFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry)
    return statSync(path).isDirectory() ? commandFiles(path) : path.endsWith('.ts') ? [path] : []
  })
}

it('oclif.manifest.json is current with commands/ (run `npm run build`)', async () => {
  const manifest = JSON.parse(readFileSync(join(REPO, 'oclif.manifest.json'), 'utf8')) as {
    version: string
    commands: Record<string, { flags: Record<string, unknown>; args: Record<string, unknown>; summary?: string }>
  }
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }
  expect(manifest.version).toBe(pkg.version)

  const sources = commandFiles(join(REPO, 'commands'))
  const ids = sources.map((file) => relative(join(REPO, 'commands'), file).replace(/\.ts$/, '').split('/').join(':'))
  expect(Object.keys(manifest.commands).sort()).toEqual(ids.sort())

  for (const [index, file] of sources.entries()) {
    const { default: command } = (await import(file)) as {
      default: { flags?: Record<string, unknown>; baseFlags?: Record<string, unknown>; args?: Record<string, unknown>; summary?: string }
    }
    const entry = manifest.commands[ids[index]!]!
    expect(Object.keys(entry.flags).sort(), `flags of ${ids[index]}`).toEqual(Object.keys({ ...command.baseFlags, ...command.flags }).sort())
    expect(Object.keys(entry.args).sort(), `args of ${ids[index]}`).toEqual(Object.keys(command.args ?? {}).sort())
    expect(entry.summary, `summary of ${ids[index]}`).toBe(command.summary)
  }
})
