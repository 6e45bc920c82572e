import { Flags } from '@oclif/core'

/** `--config FILE`, defaulting to $AIRLOCK_CONFIG or ./airlock.yaml. */
export const configFlag = Flags.string({
  char: 'c',
  description: 'Gateway configuration file (YAML).',
  env: 'AIRLOCK_CONFIG',
  default: 'airlock.yaml',
})
