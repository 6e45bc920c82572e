import type { ConnectEvent } from '../tunnel/index.js'
import { formatBytes } from './table.js'

/** One plain line per `airlock connect` event, for pipes and logs. */
export function formatConnectEvent(event: ConnectEvent): string {
  switch (event.type) {
    case 'ready':
      return `listening on ${event.host}:${event.port}`
    case 'client-connected':
      return `client ${event.client} connected (session ${event.session})`
    case 'client-closed':
      return `client ${event.client} closed: ${event.reason} (sent ${formatBytes(event.bytesOut)}, received ${formatBytes(event.bytesIn)})`
    case 'error':
      return `${event.client === undefined ? '' : `client ${event.client}: `}error: ${event.message}${event.hint ? ` (${event.hint})` : ''}`
  }
}
