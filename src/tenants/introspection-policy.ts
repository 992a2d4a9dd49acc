import type { ResourceSettings } from './tenant-settings.ts';

/** What the introspection decision needs of the calling client and of the token. */
export interface IntrospectingClient {
  readonly clientId: string;
  readonly clientAuthMethod: string | undefined;
}

export interface IntrospectedToken {
  readonly clientId?: string | undefined;
  /** RFC 8707 audience of an access token; refresh tokens have none. */
  readonly aud?: string | readonly string[] | undefined;
}

/**
 * RFC 7662 §4 leaves to the AS who may learn about which token. Castellan's rule:
 * - every client may introspect tokens issued to itself;
 * - a public client nothing else (it cannot prove who it is);
 * - a client named in some resource's `introspectionClients` (a resource server's own
 *   credentials) only access tokens whose audience is one of those resources: a stolen or
 *   curious resource-server credential learns nothing about other resources' tokens;
 * - any other confidential client every token of the tenant (the default of
 *   oidc-provider, kept for tenants that bind no resource).
 * A refusal reads as `{"active":false}`, so it reveals nothing either.
 */
export function mayIntrospect(resources: readonly ResourceSettings[], client: IntrospectingClient, token: IntrospectedToken): boolean {
  if (token.clientId === client.clientId) return true;
  if (client.clientAuthMethod === 'none') return false;
  const bound = resources.filter((resource) => resource.introspectionClients?.includes(client.clientId));
  if (bound.length === 0) return true;
  const audiences = token.aud === undefined ? [] : typeof token.aud === 'string' ? [token.aud] : token.aud;
  return audiences.some((aud) => bound.some((resource) => resource.uri === aud));
}
