/**
 * The detector library over command output: for a command connection with a `masking` section,
 * each output stream (the pty, or stdout and stderr apart) gets its own masking stream, chained by
 * the command engine after the credential canary. The stream releases whole words and lines; what
 * it holds (an unfinished word, a `Password: ` prompt) goes out when output pauses.
 */
import type { GatewayConfig, SecretSource } from '../config/index.js'
import type { MaskerContext, OutputMasker } from '../protocols/command/index.js'
import { createMasker } from '../policy/masking/index.js'

/**
 * The engine's `maskers` option for `config`. Reads `masking.hashKey` once, when a command
 * connection's rules use the `hash` strategy.
 */
export async function commandMaskers(config: GatewayConfig, secrets: SecretSource): Promise<(context: MaskerContext) => OutputMasker[]> {
  const hashing = config.connections.some(
    (connection) =>
      connection.type === 'command' &&
      connection.masking !== undefined &&
      [...connection.masking.columns, ...connection.masking.custom].some((rule) => rule.strategy === 'hash'),
  )
  const hashKey = hashing && config.masking.hashKey !== undefined ? await secrets.read(config.masking.hashKey) : undefined
  return ({ connection }) => {
    if (connection.masking === undefined) return []
    // The canary before this stage masks the connection's own secrets; this one runs the detectors.
    const masker = createMasker(connection.masking, hashKey === undefined ? {} : { hashKey })
    const stream = masker.stream()
    // Output has no columns: what it masked is counted by detector only.
    return [{ write: (chunk) => stream.write(chunk), flush: () => stream.flush(), idle: () => stream.flush(), masked: () => ({ ...masker.takeCounts().detectors }) }]
  }
}
