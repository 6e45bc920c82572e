/** Reading a raw PostgreSQL protocol session's frames in tests, as a client sees them. */
import type { Socket } from 'node:net'
import { type Frame, MessageFramer } from '../../src/protocols/postgres/framer.js'

const framers = new WeakMap<Socket, MessageFramer>()

/** The framer that keeps `socket`'s unread bytes between reads. */
export function framerOf(socket: Socket): MessageFramer {
  let framer = framers.get(socket)
  if (framer === undefined) {
    framer = new MessageFramer({ maxMessageLength: 1 << 24 })
    framers.set(socket, framer)
  }
  return framer
}

/**
 * The frames from `socket` up to and including the first for which `stop` is true; rejects, naming
 * the frame types seen, when the socket closes first.
 */
export function readUntil(socket: Socket, stop: (frame: Frame) => boolean, framer: MessageFramer = framerOf(socket)): Promise<Frame[]> {
  const frames: Frame[] = []
  return new Promise((resolve, reject) => {
    const drain = (): boolean => {
      for (let frame = framer.next(); frame !== undefined; frame = framer.next()) {
        frames.push(frame)
        if (stop(frame)) return true
      }
      return false
    }
    const onData = (chunk: Buffer): void => {
      framer.push(chunk)
      if (drain()) {
        socket.off('data', onData)
        socket.off('close', onClose)
        resolve(frames)
      }
    }
    const onClose = (): void => reject(new Error(`closed after ${frames.map((frame) => String.fromCharCode(frame.type)).join('')}`))
    socket.on('data', onData)
    socket.once('close', onClose)
  })
}
