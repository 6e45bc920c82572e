import { type DestinationStream, type Logger, pino } from 'pino'

/**
 * The gateway's structured logger. Secrets never reach it by construction (tokens are hashed before
 * lookup, secret values are never passed in); the redaction list is the second line.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'airlock-gateway' },
      redact: {
        paths: ['authorization', 'token', 'password', '*.authorization', '*.token', '*.password', 'headers.authorization', 'req.headers.authorization'],
        censor: '[REDACTED]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  )
}
