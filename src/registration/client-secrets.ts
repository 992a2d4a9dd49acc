import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { AdapterPayload, KoaContextWithOIDC } from 'oidc-provider';
import { decodeBasicCredentials } from '../http/basic-credentials.ts';

/**
 * Client secrets at rest: stored as a tagged SHA-256 digest where the secret is only ever
 * compared (client_secret_basic / client_secret_post), so a copy of the database does not
 * authenticate anyone as the client.
 *
 * Why a fast hash and not argon2: oidc-provider's secrets are 64 random bytes (512 bits,
 * lib/helpers/defaults.js secretFactory). A slow KDF protects guessable secrets; nothing
 * guesses 512 random bits, so one SHA-256 gives the same protection, and the token endpoint
 * (client credentials, introspection) can check it thousands of times a second instead of
 * tens, which would hand anyone with a client_id a CPU exhaustion lever.
 *
 * Where a secret is also a key, it stays as it is: oidc-provider derives HS* signing keys and
 * symmetric encryption keys from the plaintext secret (lib/models/client.js
 * buildSymmetricKeyStore), so clients naming such an algorithm keep a plaintext secret.
 */

const TAG = '$sha256$';
/** Methods that only ever compare the secret (RFC 6749 §2.3.1). client_secret_jwt uses it as an HMAC key. */
const COMPARED_ONLY = new Set(['client_secret_basic', 'client_secret_post']);
/** JOSE algorithms whose key oidc-provider derives from the client secret. */
const SYMMETRIC_ALG = /^(?:HS\d+|A\d{3}(?:GCM)?KW|A\d{3}(?:GCM|CBC-HS\d{3})|dir|PBES2-.*)$/;

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

export function hashClientSecret(secret: string): string {
  return `${TAG}${digest(secret).toString('base64url')}`;
}

export function isHashedClientSecret(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(TAG);
}

/** Whether this client's secret is only compared, never used as a key (see above). */
export function secretMayBeHashed(metadata: Readonly<Record<string, unknown>>): boolean {
  const method = metadata['token_endpoint_auth_method'] ?? 'client_secret_basic';
  if (typeof method !== 'string' || !COMPARED_ONLY.has(method)) return false;
  return !Object.entries(metadata).some(
    ([name, value]) => /_(?:alg|enc)$/.test(name) && typeof value === 'string' && SYMMETRIC_ALG.test(value),
  );
}

/**
 * The Client record to store: its plaintext secret replaced by the digest where allowed.
 * An already hashed secret (an RFC 7592 update re-saves the stored one) is left as it is.
 */
export function protectStoredClientSecret(payload: AdapterPayload): AdapterPayload {
  const secret = payload['client_secret'];
  if (typeof secret !== 'string' || isHashedClientSecret(secret) || !secretMayBeHashed(payload)) return payload;
  return { ...payload, client_secret: hashClientSecret(secret) };
}

/**
 * Compares a presented secret with a stored one, hashed or (seeded clients, clients whose
 * secret is a key) plaintext, in constant time: digests have one length whatever the input.
 */
export function verifyClientSecret(stored: string | undefined, presented: string): boolean {
  if (stored === undefined || stored === '') return false;
  const expected = isHashedClientSecret(stored) ? Buffer.from(stored.slice(TAG.length), 'base64url') : digest(stored);
  const actual = digest(presented);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/**
 * What an unknown client_id's presented secret is compared with: a digest like any stored
 * one, of a secret nobody knows. RFC 9700 §2.5 / RFC 6749 §10.1: a request naming an unknown
 * client does the same work as one with a wrong secret (one digest of the presented secret,
 * one constant-time comparison), so the time taken does not tell the two apart.
 */
const UNKNOWN_CLIENT_SECRET = hashClientSecret(randomBytes(64).toString('base64url'));

/**
 * The secret a request presents: client_secret_post, or client_secret_basic decoded as
 * oidc-provider decodes it (a header it refuses never reaches a client lookup).
 */
function presentedClientSecret(ctx: KoaContextWithOIDC): string | undefined {
  const posted = (ctx.oidc?.params as { client_secret?: unknown } | undefined)?.client_secret;
  if (typeof posted === 'string' && posted !== '') return posted;
  return decodeBasicCredentials(ctx.headers.authorization)?.clientSecret;
}

/**
 * Makes one provider check client secrets against what the store holds (digest or
 * plaintext), and keeps the digest out of RFC 7592 read and update responses: a client
 * keeps the secret it was given once, at registration (RFC 7592 §3: the server MAY omit it;
 * a client discards its secret only when a new one is sent).
 */
export function protectClientSecrets(provider: Provider): void {
  // oidc-provider's client authentication calls compareClientSecret (lib/shared/client_auth.js):
  // the one place a presented secret meets the stored one.
  Object.defineProperty(provider.Client.prototype, 'compareClientSecret', {
    configurable: true,
    writable: true,
    value: function compareClientSecret(this: { clientSecret?: string | undefined }, actual: string): boolean {
      return verifyClientSecret(this.clientSecret, actual);
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    // A secret was presented but no client was found (its client_id is unknown): compare it
    // anyway, before the answer leaves (same work as a wrong secret; see UNKNOWN_CLIENT_SECRET).
    const oidc = (ctx as KoaContextWithOIDC).oidc as KoaContextWithOIDC['oidc'] | undefined;
    if (oidc !== undefined && oidc.entities.Client === undefined) {
      const presented = presentedClientSecret(ctx as KoaContextWithOIDC);
      if (presented !== undefined) verifyClientSecret(UNKNOWN_CLIENT_SECRET, presented);
    }
    const body: unknown = ctx.body;
    if (typeof body === 'object' && body !== null && isHashedClientSecret((body as Record<string, unknown>)['client_secret'])) {
      delete (body as Record<string, unknown>)['client_secret'];
    }
  });
}

/**
 * RFC 7592 §2.2 lets an update echo the client's secret, which oidc-provider compares with
 * the stored value: a digest never equals the plaintext. When the echo matches the digest it
 * has said all it can and is dropped; a wrong one is passed on for oidc-provider to refuse.
 */
export function acceptEchoedClientSecret(metadata: Record<string, unknown>, stored: string | undefined): Record<string, unknown> {
  const echoed = metadata['client_secret'];
  if (typeof echoed !== 'string' || !isHashedClientSecret(stored) || !verifyClientSecret(stored, echoed)) return metadata;
  const { client_secret: _matched, ...rest } = metadata;
  return rest;
}
