import { errors, type KoaContextWithOIDC } from 'oidc-provider';

/** RFC 8693 token type of an Identity Assertion JWT Authorization Grant (draft §IANA). */
export const ID_JAG_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id-jag';
/** The JWT `typ` header every ID-JAG carries (RFC 8725 §3.11 explicit typing). */
export const ID_JAG_TYP = 'oauth-id-jag+jwt';
/** RFC 7523 §2.1: the grant an ID-JAG is redeemed with at the resource's AS. */
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/**
 * One string parameter of a token request. A repeated parameter (oidc-provider hands it over
 * as an array) is refused rather than silently narrowed to one of its values.
 */
export function singleParam(ctx: KoaContextWithOIDC, name: string): string | undefined {
  const value = (ctx.oidc.params as Record<string, unknown> | undefined)?.[name];
  if (Array.isArray(value)) {
    throw name === 'resource' || name === 'audience'
      ? new errors.InvalidTarget(`one ${name} per request`)
      : new errors.InvalidRequest(`'${name}' must be given once`);
  }
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export function requiredParam(ctx: KoaContextWithOIDC, name: string): string {
  const value = singleParam(ctx, name);
  if (value === undefined) throw new errors.InvalidRequest(`missing required parameter '${name}'`);
  return value;
}

export function scopeList(value: unknown): string[] {
  return typeof value === 'string' ? [...new Set(value.split(' ').filter(Boolean))] : [];
}

/**
 * RFC 6749 §3.3 with a ceiling: what was asked, when all of it is within the ceiling, else
 * invalid_scope naming the excess; nothing asked: the whole ceiling.
 */
export function scopesWithin(requested: string | undefined, ceiling: readonly string[], what: string): string[] {
  if (requested === undefined) return [...ceiling];
  const asked = scopeList(requested);
  const refused = asked.filter((s) => !ceiling.includes(s));
  if (refused.length) throw new errors.InvalidScope(`scope exceeds ${what}: ${refused.join(' ')}`, refused.join(' '));
  return asked;
}

/** The OAuth error code of a failure, for audit events. */
export function errorCode(err: unknown): string {
  return err instanceof errors.OIDCProviderError ? err.error : 'server_error';
}
