import { Command, Flags } from '@oclif/core'
import { AirlockError, toAirlockError } from '../errors.js'

/**
 * Every command's base: one translation of errors into the user's language (message, what to do
 * next, the exit code from the table in src/errors.ts), as text or as `--json`.
 */
export abstract class BaseCommand extends Command {
  static override baseFlags = {
    json: Flags.boolean({ description: 'Print machine-readable JSON.', default: false }),
  }

  protected get jsonMode(): boolean {
    return this.argv.includes('--json')
  }

  protected printJson(value: unknown): void {
    process.stdout.write(JSON.stringify(value) + '\n')
  }

  override async catch(error: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<void> {
    if (error.oclif?.exit !== undefined && !(error instanceof AirlockError)) {
      // oclif's own parse errors (unknown flag, missing argument) and this.exit().
      if (error.oclif.exit === 0 || error.message.startsWith('EEXIT')) throw error
      process.stderr.write(`Error: ${error.message}\n`)
      process.exitCode = 2
      return
    }
    const failure = toAirlockError(error)
    if (this.jsonMode) {
      process.stdout.write(JSON.stringify({ error: failure.toJSON() }) + '\n')
    } else {
      process.stderr.write(`Error: ${failure.message}\n`)
      if (failure.hint !== undefined) process.stderr.write(`Hint: ${failure.hint}\n`)
      if (failure.code === 'internal' && process.env.AIRLOCK_DEBUG) process.stderr.write(`${String(error.stack)}\n`)
    }
    process.exitCode = failure.exitCode
  }
}
