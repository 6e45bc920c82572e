/**
 * `airlock demo`: the whole stack on this machine with nothing else installed — an embedded
 * PostgreSQL (PGlite behind its socket server) seeded with a small shop schema, a gateway that
 * holds the connection, a service token kept in the demo's own config directory, and a
 * development identity provider (oidc-provider) with a demo user for `airlock login`.
 */
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import pg from 'pg'
import { generateServiceToken, hashServiceToken, staticCredentials } from '../auth/index.js'
import { connectInstructions, startConnect } from '../cli/connect.js'
import { createSecretSource, parseConfig } from '../config/index.js'
import { createLogger, type Gateway, startGateway } from '../gateway/index.js'

export interface Demo {
  gateway: Gateway
  token: string
  configDir: string
  /** The development identity provider the demo gateway trusts. */
  idp: { issuer: string; user: string }
  stop(): Promise<void>
}

/** The demo IdP's user: in group `demo`, so it may use demo-pg. Its login page takes any password. */
const DEMO_USER = 'demo'

/** The development IdP (oidc-provider, loaded only by the demo). */
async function startDemoIdp(configDir: string): Promise<{ issuer: string; clientId: string; stop(): Promise<void> }> {
  const { startDevIdp } = await import('../auth/dev-idp.js')
  return startDevIdp({
    users: { [DEMO_USER]: { email: 'demo@example.com', name: 'Demo User', groups: ['demo'] } },
    onNotice: (line) => appendFileSync(join(configDir, 'idp.log'), `${line}\n`),
  })
}

export function demoConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'airlock', 'demo')
}

/** The demo's service token: created once, kept 0600 in the demo's config directory. */
function demoToken(configDir: string): string {
  const file = join(configDir, 'service-token')
  if (existsSync(file)) return readFileSync(file, 'utf8').trim()
  const token = generateServiceToken()
  writeFileSync(file, `${token}\n`, { mode: 0o600 })
  return token
}

export async function startDemo(configDir = demoConfigDir()): Promise<Demo> {
  mkdirSync(configDir, { recursive: true, mode: 0o700 })
  chmodSync(configDir, 0o700)
  const token = demoToken(configDir)

  const db = await PGlite.create()
  await db.exec(SEED)
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 16 })
  await server.start()
  const dbPort = Number(server.getServerConn().split(':').pop())

  const idp = await startDemoIdp(configDir)

  const config = parseConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      auth: {
        adminGroups: ['demo-admins'],
        serviceTokens: [{ name: 'demo', sha256: hashServiceToken(token), groups: ['demo', 'demo-admins'] }],
        oidc: [{ issuer: idp.issuer, cliClientId: idp.clientId }],
      },
      audit: { store: 'sqlite:./audit.db', required: false },
      connections: [
        {
          name: 'demo-pg',
          type: 'postgres',
          description: 'embedded demo shop database (PGlite)',
          upstream: { host: '127.0.0.1', port: dbPort, database: 'postgres', user: 'postgres', tls: { mode: 'disable' } },
          access: { groups: ['demo'] },
        },
      ],
    },
    configDir,
  )
  const logger = createLogger('info', (await import('pino')).pino.destination({ dest: join(configDir, 'gateway.log'), sync: false, mkdir: true }))
  const gateway = await startGateway({ config, logger, secrets: createSecretSource({}) })
  return {
    gateway,
    token,
    configDir,
    idp: { issuer: idp.issuer, user: DEMO_USER },
    stop: async () => {
      await gateway.drain(0)
      await idp.stop()
      await server.stop()
      await db.close()
    },
  }
}

export function nextSteps(demo: Demo): string[] {
  return [
    'Airlock demo is running.',
    '',
    `  gateway   ${demo.gateway.url.href}  (logs: ${join(demo.configDir, 'gateway.log')})`,
    '  database  embedded PostgreSQL with customers, orders and api_keys; only the gateway can reach it',
    '',
    'In another terminal:',
    '',
    `  export AIRLOCK_GATEWAY=${demo.gateway.url.href}`,
    `  export AIRLOCK_TOKEN=$(cat ${join(demo.configDir, 'service-token')})`,
    '  npx airlock connections',
    '  npx airlock connect demo-pg -- psql -c "select name, email from customers limit 3"',
    '  npx airlock connect demo-pg          # a local port and a DSN for any Postgres client',
    '',
    `Or log in as a person (a development IdP runs at ${demo.idp.issuer}; sign in as "${demo.idp.user}",`,
    'it takes any password):',
    '',
    '  unset AIRLOCK_TOKEN',
    `  npx airlock login ${demo.gateway.url.href}    # --device on a machine without a browser`,
    '  npx airlock whoami',
    '  npx airlock connect demo-pg -- psql -c "select count(*) from orders"',
    '',
    'Ctrl-C stops the demo.',
  ]
}

/** The unattended tour (`airlock demo --once`): a real client through a real tunnel, then exit. */
export async function runTour(demo: Demo, print: (line: string) => void): Promise<void> {
  const connected = await startConnect({
    credentials: staticCredentials(demo.gateway.url, demo.token),
    connection: 'demo-pg',
    port: 0,
    onEvent: () => {},
  })
  try {
    print(`1. airlock connect demo-pg opened ${connected.listener.host}:${connected.listener.port}`)
    for (const line of connectInstructions(connected)) print(`     ${line.replace(/:[^:@/]+@/, ':<local secret>@')}`)
    const client = new pg.Client({
      host: connected.listener.host,
      port: connected.listener.port,
      user: 'postgres',
      database: 'postgres',
      password: connected.localSecret,
    })
    await client.connect()
    try {
      const count = await client.query<{ customers: number; orders: number }>(
        'select (select count(*)::int from customers) as customers, (select count(*)::int from orders) as orders',
      )
      print(`2. through the tunnel: ${count.rows[0]!.customers} customers, ${count.rows[0]!.orders} orders`)
      const top = await client.query<{ name: string; total: string }>(
        'select c.name, sum(o.total)::text as total from customers c join orders o on o.customer_id = c.id group by c.name order by sum(o.total) desc limit 3',
      )
      for (const row of top.rows) print(`     ${row.name.padEnd(20)} ${row.total}`)
      print('3. the client never held a database password: the gateway authenticated for it')
    } finally {
      await client.end()
    }
    const { oidc } = (await (await fetch(new URL('.well-known/airlock', demo.gateway.url))).json()) as { oidc: { issuer: string }[] }
    const discovery = await fetch(`${demo.idp.issuer}/.well-known/openid-configuration`)
    if (!discovery.ok || !oidc.some((entry) => entry.issuer === demo.idp.issuer)) throw new Error('the demo identity provider is not reachable through the gateway')
    print(`4. people log in with \`airlock login ${demo.gateway.url.href}\` at the demo identity provider (user "${demo.idp.user}")`)
    print('Coming next in this demo: guardrails, masking of emails and card numbers, and the audit log.')
  } finally {
    await connected.listener.close()
  }
}

const SEED = `
create table customers (id serial primary key, name text not null, email text not null, phone text, card_number text);
create table orders (id serial primary key, customer_id int not null references customers(id), total numeric(10,2) not null, created_at timestamptz not null default now());
create table api_keys (id serial primary key, customer_id int not null references customers(id), key text not null);
insert into customers (name, email, phone, card_number) values
  ('Ada Lovelace', 'ada@example.com', '+44 20 7946 0018', '4111 1111 1111 1111'),
  ('Grace Hopper', 'grace@example.org', '+1 202 555 0143', '5500 0000 0000 0004'),
  ('Alan Turing', 'alan@example.net', '+44 161 496 0734', '3400 0000 0000 009'),
  ('Katherine Johnson', 'katherine@example.com', '+1 757 555 0199', '6011 0000 0000 0004'),
  ('Edsger Dijkstra', 'edsger@example.nl', '+31 20 555 0123', '4012 8888 8888 1881');
insert into orders (customer_id, total, created_at)
  select 1 + (i % 5), round((10 + (i * 37) % 490)::numeric, 2), now() - (i || ' hours')::interval from generate_series(1, 40) as i;
insert into api_keys (customer_id, key) values
  (1, 'sk_live_' || md5('ada')), (2, 'sk_live_' || md5('grace')), (3, 'ghp_' || md5('alan') || 'abcd');
`
