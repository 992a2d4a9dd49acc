import * as client from 'openid-client';
import { isLoopbackUrl, type UpstreamIdpSettings } from './upstream-settings.ts';

/** How long a discovered upstream configuration is trusted before it is read again. */
export const DISCOVERY_TTL_MS = 10 * 60_000;
/** Bounds the cache: tenants × their IdPs (at most 20 each). */
const MAX_CACHED = 1000;
/** Per request to the upstream (discovery, token, JWKS, userinfo): a dead upstream costs this, not a hung page. */
const REQUEST_TIMEOUT_SECONDS = 10;

/** The upstream could not be used: unreachable, misconfigured, or its answer was no usable metadata. */
export class UpstreamUnavailableError extends Error {
  readonly code = 'UPSTREAM_UNAVAILABLE';
  override readonly name = 'UpstreamUnavailableError';
}

interface CacheEntry {
  configuration: Promise<client.Configuration>;
  expiresAt: number;
}

const cache = new Map<string, CacheEntry>();

function clientAuthentication(idp: UpstreamIdpSettings): client.ClientAuth {
  if (idp.clientSecretEnv === undefined) return client.None();
  const secret = process.env[idp.clientSecretEnv];
  if (!secret) throw new UpstreamUnavailableError(`the client secret of upstream "${idp.id}" is not set (${idp.clientSecretEnv})`);
  return idp.tokenEndpointAuthMethod === 'client_secret_post' ? client.ClientSecretPost(secret) : client.ClientSecretBasic(secret);
}

async function discover(idp: UpstreamIdpSettings): Promise<client.Configuration> {
  const issuer = new URL(idp.issuer);
  // The settings schema allows http on loopback hosts only; checked again here because
  // openid-client must be told explicitly, and only for those.
  const insecure = issuer.protocol === 'http:';
  if (insecure && !isLoopbackUrl(issuer)) throw new UpstreamUnavailableError(`upstream "${idp.id}": plain http only on a loopback host`);
  const auth = clientAuthentication(idp);
  try {
    // discovery() checks that the document's `issuer` is exactly the configured one.
    return await client.discovery(issuer, idp.clientId, undefined, auth, {
      timeout: REQUEST_TIMEOUT_SECONDS,
      // openid-client, as OIDC Core §3.1.3.7 allows over TLS, skips the id_token's signature
      // by default; here it is checked against the upstream's jwks_uri: the account link
      // rests on that token alone, and a loopback upstream is not even TLS.
      execute: [client.enableNonRepudiationChecks, ...(insecure ? [client.allowInsecureRequests] : [])],
    });
  } catch (err) {
    throw new UpstreamUnavailableError(`discovery of upstream "${idp.id}" failed`, { cause: err });
  }
}

/**
 * The openid-client configuration of a tenant's upstream IdP, discovered on first use and
 * cached for DISCOVERY_TTL_MS. Concurrent first uses share one discovery; a failure is not
 * cached, so the next sign-in tries again. Throws UpstreamUnavailableError.
 */
export function upstreamConfiguration(tenant: string, idp: UpstreamIdpSettings, now = Date.now()): Promise<client.Configuration> {
  // Every setting that shapes the configuration is in the key: a changed entry is a new one.
  const key = JSON.stringify([tenant, idp.id, idp.issuer, idp.clientId, idp.clientSecretEnv ?? null, idp.tokenEndpointAuthMethod]);
  const cached = cache.get(key);
  if (cached && cached.expiresAt > now) return cached.configuration;
  if (cached) cache.delete(key);
  if (cache.size >= MAX_CACHED) {
    for (const [k, entry] of cache) if (entry.expiresAt <= now) cache.delete(k);
    // Still full: drop the oldest insertion (Map keeps insertion order).
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value ?? '');
  }
  const configuration = discover(idp);
  cache.set(key, { configuration, expiresAt: now + DISCOVERY_TTL_MS });
  configuration.catch(() => {
    if (cache.get(key)?.configuration === configuration) cache.delete(key);
  });
  return configuration;
}

/**
 * What the log may say of an upstream failure: its code and message, and the code of a
 * network cause. Never the whole error: openid-client's causes can carry the authorization
 * response, with a code that still works.
 */
export function describeUpstreamFailure(err: unknown): Record<string, string> {
  if (!(err instanceof Error)) return { message: String(err) };
  const code = (err as { code?: unknown }).code;
  const described: Record<string, string> = { message: err.message, ...(typeof code === 'string' && { code }) };
  // A discovery failure wraps the fetch error, which wraps the socket's (ECONNREFUSED, ...).
  let cause: unknown = err instanceof UpstreamUnavailableError ? err.cause : undefined;
  for (let depth = 0; cause instanceof Error && depth < 3; depth += 1) {
    const causeCode = (cause as { code?: unknown }).code;
    described.cause = typeof causeCode === 'string' ? causeCode : cause.message;
    cause = cause.cause;
  }
  return described;
}

/**
 * Whether an openid-client failure means the sign-in could not be completed with the
 * upstream (unreachable, timed out, an HTTP or token endpoint error: the person may try
 * again), as opposed to an answer that failed validation (state, iss, nonce, signature...).
 */
export function isRetryableUpstreamFailure(err: unknown): boolean {
  if (err instanceof UpstreamUnavailableError || err instanceof TypeError || err instanceof client.ResponseBodyError) return true;
  if (!(err instanceof client.ClientError)) return false;
  return err.code === 'OAUTH_TIMEOUT' || err.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || err.code === 'OAUTH_RESPONSE_IS_NOT_JSON';
}
