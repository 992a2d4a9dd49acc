import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWK } from 'jose';
import type { Context } from 'koa';
import { InsufficientScopeError, InvalidTokenError, TenantNotFoundError } from '../../errors/errors.ts';
import type { Keyring } from '../../keys/keyring.ts';
import { publicJwk } from '../../keys/public-jwk.ts';
import { SIGNING_ALGORITHMS, signedTokenRetentionSeconds, type TenantSettings } from '../../tenants/tenant-settings.ts';
import type { TenantRegistry } from '../../tenants/tenant-registry.ts';
import type { AdminActor } from '../services/admin-actor.ts';
import { adminResourceUri, type AdminScope } from '../services/system-tenant.ts';

export const ADMIN_REALM = 'castellan-admin';

export interface AdminPrincipal {
  actor: AdminActor;
  scopes: ReadonlySet<string>;
}

export interface AdminAuthDeps {
  baseUrl: string;
  systemTenant: string;
  tenants: Pick<TenantRegistry, 'get' | 'issuerFor'>;
  keyring: Pick<Keyring, 'loadSigningKeys'>;
  /** How long the system tenant's public keys are trusted before they are re-read. */
  keysMaxAgeMs?: number;
  now?: () => number;
}

/**
 * Castellan protecting itself: an admin request carries an RFC 9068 JWT access token of the
 * system tenant, checked here against that tenant's own keys (no HTTP round trip): signature,
 * `typ` at+jwt, issuer, audience = the admin API's resource URI, expiry. A disabled or
 * missing system tenant accepts no token at all.
 */
export function createAdminAuthenticator(deps: AdminAuthDeps): (ctx: Context) => Promise<AdminPrincipal> {
  const maxAge = deps.keysMaxAgeMs ?? 30_000;
  const now = deps.now ?? Date.now;
  const audience = adminResourceUri(deps.baseUrl);
  const issuer = deps.tenants.issuerFor(deps.systemTenant);
  let keys: { jwks: ReturnType<typeof createLocalJWKSet>; loadedAt: number } | undefined;

  async function loadKeys(settings: TenantSettings): Promise<ReturnType<typeof createLocalJWKSet>> {
    const { jwks } = await deps.keyring.loadSigningKeys(deps.systemTenant, { retentionSeconds: signedTokenRetentionSeconds(settings) });
    const set: JSONWebKeySet = { keys: jwks.keys.map((key) => publicJwk(key as JWK)) };
    keys = { jwks: createLocalJWKSet(set), loadedAt: now() };
    return keys.jwks;
  }

  async function verify(token: string, fresh: boolean) {
    // Every request: a disabled (or deleted) system tenant locks the API out at once.
    const runtime = await deps.tenants.get(deps.systemTenant).catch((err: unknown) => {
      if (err instanceof TenantNotFoundError) throw new InvalidTokenError('the admin API\'s system tenant is missing or disabled', { realm: ADMIN_REALM });
      throw err;
    });
    const jwks = !fresh && keys && now() - keys.loadedAt < maxAge ? keys.jwks : await loadKeys(runtime.settings);
    return jwtVerify(token, jwks, { issuer, audience, algorithms: [...SIGNING_ALGORITHMS], typ: 'at+jwt', requiredClaims: ['exp', 'client_id'] });
  }

  return async (ctx) => {
    const header = ctx.get('Authorization');
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(header);
    if (!header) throw new InvalidTokenError('an access token of the system tenant is required', { realm: ADMIN_REALM, missing: true });
    if (!match?.[1]) throw new InvalidTokenError('the Authorization header must be "Bearer <access token>"', { realm: ADMIN_REALM });
    let payload;
    try {
      try {
        ({ payload } = await verify(match[1], false));
      } catch (err) {
        // A key rotated since the cache was filled: read the keys again, once.
        if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
        ({ payload } = await verify(match[1], true));
      }
    } catch (err) {
      if (err instanceof InvalidTokenError) throw err;
      if (err instanceof joseErrors.JOSEError) {
        const reason = err instanceof joseErrors.JWTExpired ? 'the access token has expired'
          : err instanceof joseErrors.JWTClaimValidationFailed ? `the access token is not for this API (${err.claim} check failed)`
            : 'the access token is not valid here';
        throw new InvalidTokenError(reason, { realm: ADMIN_REALM });
      }
      throw err;
    }
    const scopes = new Set(typeof payload['scope'] === 'string' ? payload['scope'].split(' ').filter(Boolean) : []);
    const clientId = String(payload['client_id']);
    return { actor: { via: 'api', subject: typeof payload.sub === 'string' ? payload.sub : clientId, clientId }, scopes };
  };
}

/** 403 insufficient_scope (RFC 6750 §3.1) unless the token carries `scope`. */
export function requireScope(principal: AdminPrincipal, scope: AdminScope): void {
  if (!principal.scopes.has(scope)) throw new InsufficientScopeError(scope);
}
