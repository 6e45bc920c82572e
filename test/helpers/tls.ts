/**
 * A throwaway certificate authority for tests, made with the openssl CLI (EC P-256, valid 2 days).
 * Everything is written into `dir`; private keys are mode 0600.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { join } from 'node:path'

export interface IssuedCert {
  certFile: string
  keyFile: string
}

export interface TestCa {
  /** The CA certificate (PEM file); pass it as sslrootcert / `ca`. */
  caFile: string
  caPem: string
  /** The CA private key (only the helper needs it). */
  caKeyFile: string
  /**
   * Issues a leaf certificate with CN `name` signed by this CA, usable as server and client certificate.
   * `sans` are `DNS:host`, `IP:addr` (or bare names/addresses, typed automatically), e.g. ['localhost', '127.0.0.1'].
   */
  issue(name: string, sans: string[]): IssuedCert
}

const VALIDITY_DAYS = '2'

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 })
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: Buffer }
    if (err.code === 'ENOENT') throw new Error('openssl CLI not found on PATH (apt-get install -y openssl)')
    throw new Error(`openssl ${args[0]} failed: ${err.stderr?.toString().trim() ?? err.message}`)
  }
}

/** A file-name-safe form of a certificate name. */
function slug(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '_') || 'cert'
}

/** Escapes a value for an openssl `-subj` string. */
function subjectValue(value: string): string {
  return value.replace(/[\\/,+=]/g, (c) => `\\${c}`)
}

function sanEntry(san: string): string {
  if (isIP(san) === 4 || isIP(san) === 6) return `IP:${san}`
  const match = /^(DNS|IP|email|URI):(.+)$/i.exec(san)
  if (match) return `${match[1]!.toUpperCase() === 'EMAIL' ? 'email' : match[1]!.toUpperCase()}:${match[2]}`
  if (/^[A-Za-z0-9*._-]+$/.test(san)) return `DNS:${san}`
  throw new Error(`unsupported subjectAltName ${JSON.stringify(san)}`)
}

/** A positive random 127-bit serial number. */
function serial(): string {
  const bytes = randomBytes(16)
  bytes[0] = bytes[0]! & 0x7f
  return `0x${bytes.toString('hex')}`
}

export function createTestCa(dir: string): TestCa {
  mkdirSync(dir, { recursive: true })
  const caKeyFile = join(dir, 'ca.key')
  const caFile = join(dir, 'ca.crt')
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', caKeyFile], dir)
  chmodSync(caKeyFile, 0o600)
  openssl(
    [
      'req', '-x509', '-new', '-key', caKeyFile, '-sha256', '-days', VALIDITY_DAYS, '-set_serial', serial(),
      '-subj', `/CN=Airlock Test CA ${randomBytes(4).toString('hex')}`,
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-addext', 'subjectKeyIdentifier=hash',
      '-out', caFile,
    ],
    dir,
  )
  const caPem = readFileSync(caFile, 'utf8')
  const issued = new Map<string, number>()

  function issue(name: string, sans: string[]): IssuedCert {
    const count = (issued.get(name) ?? 0) + 1
    issued.set(name, count)
    const base = count === 1 ? slug(name) : `${slug(name)}-${count}`
    const keyFile = join(dir, `${base}.key`)
    const certFile = join(dir, `${base}.crt`)
    const csrFile = join(dir, `${base}.csr`)
    const extFile = join(dir, `${base}.ext`)
    const extensions = [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature',
      'extendedKeyUsage = serverAuth,clientAuth',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
    ]
    if (sans.length > 0) extensions.push(`subjectAltName = ${sans.map(sanEntry).join(',')}`)
    writeFileSync(extFile, `${extensions.join('\n')}\n`)
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile], dir)
    chmodSync(keyFile, 0o600)
    openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${subjectValue(name)}`, '-out', csrFile], dir)
    openssl(
      [
        'x509', '-req', '-in', csrFile, '-CA', caFile, '-CAkey', caKeyFile, '-set_serial', serial(),
        '-days', VALIDITY_DAYS, '-sha256', '-extfile', extFile, '-out', certFile,
      ],
      dir,
    )
    return { certFile, keyFile }
  }

  return { caFile, caPem, caKeyFile, issue }
}
