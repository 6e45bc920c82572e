import { Flags } from '@oclif/core'
import { BaseCommand } from '../src/cli/base-command.js'

export default class Demo extends BaseCommand {
  static override summary = 'Run the whole stack on this machine: embedded database, gateway, token'
  static override description =
    'Starts an embedded PostgreSQL seeded with a small shop schema, a gateway holding its connection, and a service token kept in ~/.config/airlock/demo, then prints what to try. Serves until Ctrl-C; --once runs a scripted tour through a real tunnel and exits.'
  static override flags = {
    once: Flags.boolean({ description: 'Run the tour unattended and exit (for CI).', default: false }),
  }
  static override examples = ['<%= config.bin %> demo', '<%= config.bin %> demo --once']

  async run(): Promise<void> {
    const { flags } = await this.parse(Demo)
    const { nextSteps, runTour, startDemo } = await import('../src/demo/index.js')
    process.stdout.write('Starting the embedded database and the gateway...\n')
    const demo = await startDemo()
    try {
      if (flags.once) {
        await runTour(demo, (line) => process.stdout.write(`${line}\n`))
        return
      }
      process.stdout.write(nextSteps(demo).join('\n') + '\n')
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve())
        process.once('SIGTERM', () => resolve())
      })
    } finally {
      await demo.stop()
    }
  }
}
