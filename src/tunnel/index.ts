export { type OpenedTunnel, openTunnel, type OpenTunnelOptions } from './client.js'
export { type ConnectEvent, type FrontResult, listenLocal, LOCAL_HOST, type ListenerStats, type LocalFront, type LocalListener, type LocalListenerOptions } from './local.js'
export { pipeSocket } from './pipe.js'
export {
  type ControlMessage,
  decodeOpenParams,
  encodeOpenParams,
  MAX_FRAME,
  type OpenParams,
  parseClientHeader,
  parseControl,
  PROTOCOL_VERSION,
} from './protocol.js'
export { type CloseReason, type Transport, WsTransport, type WsTransportOptions } from './transport.js'
