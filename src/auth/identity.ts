/** Who is calling the gateway, as established by one authenticator. */
export interface Identity {
  /** `service` for a service token, `oidc` for a person, `workload` for a machine OIDC token. */
  kind: 'service' | 'oidc' | 'workload'
  /** Stable and unique: `service:<name>` or `<issuer>#<sub>`; never an email alone. */
  id: string
  /** For people and logs: the token name, or the email/preferred name of a person. */
  display: string
  groups: readonly string[]
  /** When the credential stops being accepted for new sessions (ms since epoch), if known. */
  expiresAt?: number
}

export function hasAnyGroup(identity: Identity, groups: readonly string[]): boolean {
  return groups.some((group) => identity.groups.includes(group))
}
