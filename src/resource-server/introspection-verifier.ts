import { z } from 'zod';
import { InvalidTokenError, VerifierUnavailableError } from './errors.ts';
import { IntrospectionCache } from './introspection-cache.ts';
import { clockSchema, fetchSchema, httpUrlSchema, parseOptions } from './options.ts';
import { resourceSchema } from './resource-uri.ts';
import { parseScopeClaim } from './scopes.ts';
import { parseActClaim, type AuthInfo, type AuthInfoExtra, type TokenVerifier } from './token-verifier.ts';

/** How long an "inactive" answer may be remembered at most: a few seconds against floods of junk tokens, no more. */
export const MAX_NEGATIVE_CACHE_SECONDS = 5;
const MAX_RESPONSE_BYTES = 64 * 1024;

const introspectionVerifierOptionsSchema = z.object({
  /** The AS's RFC 7662 endpoint (Castellan: `<issuer>/token/introspection`). */
  introspectionEndpoint: httpUrlSchema,
  /** This resource server's confidential client at the AS, authenticated with client_secret_basic. */
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  /** This server's canonical resource URI; the response's `aud` must contain it. */
  audience: resourceSchema,
  /** When set, the response's `iss` must equal it (recommended with several issuers about). */
  issuer: httpUrlSchema.optional(),
  /**
   * How long an "active" answer is reused. 0 (the default): every request asks the AS, so a
   * revocation is seen at once. N > 0: a revoked token keeps working here for up to N seconds
   * after its last introspection. Never beyond the token's own exp.
   */
  cacheTtlSeconds: z.number().int().min(0).max(3600).default(0),
  /** Bound on cached answers (LRU); the oldest are dropped first. */
  maxCacheEntries: z.number().int().min(1).max(10_000_000).default(10_000),
  /** How long an "inactive" answer is reused: 0 (default) up to MAX_NEGATIVE_CACHE_SECONDS. */
  negativeCacheTtlSeconds: z.number().int().min(0).max(MAX_NEGATIVE_CACHE_SECONDS).default(0),
  timeoutMs: z.number().int().min(1).max(60_000).default(5000),
  /** The clock cache entries and exp/nbf are judged by; Date.now unless given. */
  now: clockSchema.optional(),
  fetch: fetchSchema.optional(),
});

export type IntrospectionVerifierOptions = z.input<typeof introspectionVerifierOptionsSchema>;
type Options = z.output<typeof introspectionVerifierOptionsSchema>;

/** What is remembered per token: the verified AuthInfo minus the token, or the refusal. */
type Cached = { ok: true; authInfo: Omit<AuthInfo, 'token'> } | { ok: false; error: InvalidTokenError };

/** RFC 6749 §2.3.1: client_id and secret are form-urlencoded before base64. */
function basicCredentials(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function introspect(options: Options, token: string): Promise<Record<string, unknown>> {
  let response: Response;
  let text: string;
  try {
    response = await (options.fetch ?? fetch)(options.introspectionEndpoint, {
      method: 'POST',
      headers: {
        authorization: basicCredentials(options.clientId, options.clientSecret),
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    throw new VerifierUnavailableError('the introspection endpoint could not be reached', { cause: error });
  }
  if (text.length > MAX_RESPONSE_BYTES) throw new VerifierUnavailableError('the introspection response is too large');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new VerifierUnavailableError(`the introspection endpoint answered ${response.status} without JSON`, { cause: error });
  }
  const record = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  // oidc-provider refuses to introspect structured (JWT) access tokens: that is the token's
  // kind being wrong for this resource, not the AS failing.
  if (response.status === 400 && record.error === 'unsupported_token_type') {
    throw new InvalidTokenError('ERR_TOKEN_UNSUPPORTED', 'this resource accepts opaque access tokens only');
  }
  if (response.status === 401) throw new VerifierUnavailableError('the introspection endpoint refused this resource server\'s client credentials');
  if (response.status !== 200) throw new VerifierUnavailableError(`the introspection endpoint answered ${response.status}`);
  if (typeof record.active !== 'boolean') throw new VerifierUnavailableError('the introspection response has no boolean "active"');
  return record;
}

function optionalNumber(value: unknown, member: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new InvalidTokenError('ERR_TOKEN_CLAIMS', `${member} must be a number`);
  return value;
}

/** RFC 7662 §2.2 response → AuthInfo, with the checks the AS leaves to us: audience, issuer, kind, lifetime. */
function toAuthInfo(options: Options, response: Record<string, unknown>, nowMs: number): Omit<AuthInfo, 'token'> {
  if (response.active !== true) throw new InvalidTokenError('ERR_TOKEN_INACTIVE', 'inactive, revoked or unknown');
  const tokenType = response.token_type;
  if (tokenType !== undefined && (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer')) {
    // A refresh token (or a DPoP-bound one) presented as a bearer access token.
    throw new InvalidTokenError('ERR_TOKEN_UNSUPPORTED', 'not a bearer access token');
  }
  if (response.cnf !== undefined) throw new InvalidTokenError('ERR_TOKEN_UNSUPPORTED', 'sender-constrained tokens are not accepted as bearer tokens');
  if (options.issuer !== undefined && response.iss !== options.issuer) throw new InvalidTokenError('ERR_TOKEN_ISSUER', 'issued by another authorization server');
  const aud = response.aud;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  // A token without an audience could be replayed at any resource: refused, not assumed ours.
  if (!audiences.includes(options.audience)) throw new InvalidTokenError('ERR_TOKEN_AUDIENCE', 'issued for another resource');
  const exp = optionalNumber(response.exp, 'exp');
  const nbf = optionalNumber(response.nbf, 'nbf');
  if (exp !== undefined && exp * 1000 <= nowMs) throw new InvalidTokenError('ERR_TOKEN_EXPIRED', 'expired');
  if (nbf !== undefined && nbf * 1000 > nowMs) throw new InvalidTokenError('ERR_TOKEN_NOT_YET_VALID', 'not valid yet');
  if (typeof response.client_id !== 'string' || response.client_id === '') throw new InvalidTokenError('ERR_TOKEN_CLAIMS', 'client_id must be a string');
  const act = parseActClaim(response.act);
  const extra: AuthInfoExtra = {
    tokenFormat: 'introspection',
    sub: typeof response.sub === 'string' ? response.sub : undefined,
    iss: typeof response.iss === 'string' ? response.iss : undefined,
    ...(act ? { act } : {}),
    claims: { ...response },
  };
  return {
    clientId: response.client_id,
    scopes: parseScopeClaim(response.scope),
    ...(exp !== undefined ? { expiresAt: exp } : {}),
    resource: new URL(options.audience),
    extra,
  };
}

/**
 * Verifies opaque access tokens through RFC 7662 introspection, authenticated with
 * client_secret_basic. With cacheTtlSeconds 0 (the default) every request asks the AS and a
 * revoked token is refused on its next use; a positive TTL trades that for fewer round trips,
 * and a revoked token then works for up to that many seconds more (never past its exp).
 */
export function createIntrospectionVerifier(input: IntrospectionVerifierOptions): TokenVerifier {
  const options = parseOptions(introspectionVerifierOptionsSchema, input, 'createIntrospectionVerifier');
  const now = options.now ?? Date.now;
  const caching = options.cacheTtlSeconds > 0 || options.negativeCacheTtlSeconds > 0;
  const cache = new IntrospectionCache<Cached>(caching ? options.maxCacheEntries : 0);

  const answer = (cached: Cached, token: string): AuthInfo => {
    if (!cached.ok) throw new InvalidTokenError(cached.error.code, cached.error.message);
    return { ...cached.authInfo, token };
  };

  return {
    async verifyAccessToken(token: string): Promise<AuthInfo> {
      const key = caching ? IntrospectionCache.keyOf(token) : '';
      if (caching) {
        const hit = cache.get(key, now());
        if (hit) return answer(hit, token);
      }
      const response = await introspect(options, token);
      const nowMs = now();
      let cached: Cached;
      try {
        cached = { ok: true, authInfo: toAuthInfo(options, response, nowMs) };
      } catch (error) {
        if (!(error instanceof InvalidTokenError)) throw error;
        cached = { ok: false, error };
      }
      if (cached.ok && options.cacheTtlSeconds > 0) {
        const exp = cached.authInfo.expiresAt;
        const until = Math.min(nowMs + options.cacheTtlSeconds * 1000, exp === undefined ? Infinity : exp * 1000);
        cache.set(key, cached, until, nowMs);
      } else if (!cached.ok && options.negativeCacheTtlSeconds > 0) {
        cache.set(key, cached, nowMs + options.negativeCacheTtlSeconds * 1000, nowMs);
      }
      return answer(cached, token);
    },
  };
}
