/**
 * The claims of a JWT read without verifying it: for the CLI's own bookkeeping only (when its
 * token expires, whom it names). The gateway verifies every token it is given; nothing here
 * decides access. Kept free of jose so that CLI start-up does not load a crypto library.
 */
export function unverifiedClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.')
  if (parts.length !== 3 || parts[1] === undefined || !/^[A-Za-z0-9_-]+$/.test(parts[1])) return undefined
  try {
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as unknown
    return typeof claims === 'object' && claims !== null && !Array.isArray(claims) ? (claims as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}
