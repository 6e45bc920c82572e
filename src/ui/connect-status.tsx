import { Box, render, Text } from 'ink'
import { useEffect, useState } from 'react'
import type { ConnectEvent, ListenerStats } from '../tunnel/index.js'
import { formatBytes } from './table.js'

export interface ConnectStatusProps {
  connection: string
  address: string
  instructions: readonly string[]
  stats: () => ListenerStats
  subscribe: (listener: (event: ConnectEvent) => void) => void
}

function ConnectStatus({ connection, address, instructions, stats, subscribe }: ConnectStatusProps) {
  const [current, setCurrent] = useState(stats())
  const [lastError, setLastError] = useState<string | undefined>(undefined)
  useEffect(() => {
    subscribe((event) => {
      if (event.type === 'error') setLastError(event.message + (event.hint ? ` — ${event.hint}` : ''))
      else if (event.type === 'client-closed' && event.code !== undefined) setLastError(event.reason)
      setCurrent(stats())
    })
    const timer = setInterval(() => setCurrent(stats()), 500)
    return () => clearInterval(timer)
  }, [])
  return (
    <Box flexDirection="column">
      <Text>
        <Text color="green">●</Text> <Text bold>{connection}</Text> on <Text bold>{address}</Text>
      </Text>
      {instructions.map((line) => (
        <Text key={line} dimColor>
          {'  '}
          {line}
        </Text>
      ))}
      <Text>
        {'  '}clients {current.active} open / {current.total} total · sent {formatBytes(current.bytesOut)} · received{' '}
        {formatBytes(current.bytesIn)}
      </Text>
      {lastError === undefined ? null : (
        <Text color="red">
          {'  '}last error: {lastError}
        </Text>
      )}
      <Text dimColor>{'  '}Ctrl-C to stop</Text>
    </Box>
  )
}

/** Renders the live status until `unmount` is called. */
export function renderConnectStatus(props: ConnectStatusProps): { unmount: () => void } {
  const instance = render(<ConnectStatus {...props} />, { exitOnCtrlC: false })
  return { unmount: () => instance.unmount() }
}
