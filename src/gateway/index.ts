export { createLogger } from './logger.js'
export { type Gateway, type GatewayOptions, startGateway } from './server.js'
export { type Session, type SessionInfo, SessionRegistry } from './sessions.js'
