import { z } from 'zod';
import { InvalidClientMetadataError, InvalidRedirectUriError } from '../errors/errors.ts';
import { PRIVATE_JWK_MEMBERS } from '../keys/public-jwk.ts';

/**
 * Castellan's rules for client metadata that a client states about itself: RFC 7591
 * registrations and Client ID Metadata Documents alike. oidc-provider validates again
 * after us; these rules are the stricter, MCP-minded ones, with clear errors.
 */

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);
/** RFC 8252 §7.1: a private-use scheme is a reverse domain name, so it contains a dot. */
const PRIVATE_USE_SCHEME = /^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+$/;

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const b64 = (min: number, max: number) => z.string().min(min).max(max).regex(BASE64URL, 'must be base64url');

/**
 * A public signing key of a client (RFC 7517 §4, RFC 7518 §6, RFC 8037): RSA of 2048 to
 * 8192 bits, EC on P-256/384/521, OKP Ed25519/Ed448. A key oidc-provider could not use
 * (unknown kty, missing members) is refused here rather than failing every assertion later.
 */
const publicJwkSchema = z.discriminatedUnion('kty', [
  z.looseObject({ kty: z.literal('RSA'), n: b64(342, 1366), e: b64(1, 8) }),
  z.looseObject({ kty: z.literal('EC'), crv: z.enum(['P-256', 'P-384', 'P-521']), x: b64(43, 88), y: b64(43, 88) }),
  z.looseObject({ kty: z.literal('OKP'), crv: z.enum(['Ed25519', 'Ed448']), x: b64(43, 76) }),
]).superRefine((key, ctx) => {
  // A client publishes public keys only.
  const secret = PRIVATE_JWK_MEMBERS.filter((member) => member in key);
  if (secret.length) ctx.addIssue({ code: 'custom', message: `jwks must hold public keys only (found ${secret.join(', ')})` });
  if ('use' in key && key.use !== 'sig') ctx.addIssue({ code: 'custom', message: 'jwks keys must be signing keys (use "sig")' });
});

export type RedirectKind = 'https' | 'loopback' | 'private-use';

/**
 * https anywhere, http only on loopback (any port, RFC 8252 §7.3), or a private-use scheme
 * for native apps (RFC 8252 §7.1). No fragments (RFC 6749 §3.1.2), no wildcards.
 */
export function classifyRedirectUri(value: string): RedirectKind {
  if (value.includes('*')) throw new InvalidRedirectUriError(`redirect_uris must not contain wildcards: ${value}`);
  const url = URL.parse(value);
  if (!url) throw new InvalidRedirectUriError(`redirect_uris must be absolute URIs: ${value}`);
  if (url.hash || value.includes('#')) throw new InvalidRedirectUriError(`redirect_uris must not contain a fragment: ${value}`);
  if (url.username || url.password) throw new InvalidRedirectUriError(`redirect_uris must not contain credentials: ${value}`);
  const scheme = url.protocol.slice(0, -1);
  if (scheme === 'https') {
    if (!url.hostname) throw new InvalidRedirectUriError(`redirect_uris need a host: ${value}`);
    return 'https';
  }
  if (scheme === 'http') {
    if (LOOPBACK_HOSTS.has(url.hostname)) return 'loopback';
    throw new InvalidRedirectUriError(`http redirect_uris are allowed on loopback only (127.0.0.1, [::1], localhost): ${value}`);
  }
  if (PRIVATE_USE_SCHEME.test(scheme)) return 'private-use';
  throw new InvalidRedirectUriError(`redirect_uris must use https, http on loopback, or a private-use (reverse domain) scheme: ${value}`);
}

const httpsUrl = z.string().max(2048).refine((v) => URL.parse(v)?.protocol === 'https:', 'must be an https URL');

export const SUPPORTED_GRANT_TYPES = [
  'authorization_code',
  'refresh_token',
  'client_credentials',
  'urn:ietf:params:oauth:grant-type:token-exchange',
  'urn:ietf:params:oauth:grant-type:device_code',
] as const;
export const SUPPORTED_AUTH_METHODS = ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;

/** The members Castellan keeps; unknown members are ignored, not rejected (RFC 7591 §2). */
const clientMetadataSchema = z.object({
  redirect_uris: z.array(z.string().max(2048)).max(20).optional(),
  post_logout_redirect_uris: z.array(z.string().max(2048)).max(20).optional(),
  grant_types: z.array(z.enum(SUPPORTED_GRANT_TYPES)).min(1).max(5).optional(),
  response_types: z.array(z.enum(['code'])).max(1).optional(),
  token_endpoint_auth_method: z.enum(SUPPORTED_AUTH_METHODS).optional(),
  application_type: z.enum(['web', 'native']).optional(),
  client_name: z.string().min(1).max(200).optional(),
  client_uri: httpsUrl.optional(),
  logo_uri: httpsUrl.optional(),
  policy_uri: httpsUrl.optional(),
  tos_uri: httpsUrl.optional(),
  contacts: z.array(z.string().min(1).max(320)).max(10).optional(),
  software_id: z.string().min(1).max(200).optional(),
  software_version: z.string().min(1).max(100).optional(),
  scope: z.string().max(2000).optional(),
  jwks_uri: httpsUrl.optional(),
  jwks: z.object({ keys: z.array(publicJwkSchema).min(1).max(10) }).optional(),
  id_token_signed_response_alg: z.enum(['RS256', 'ES256']).optional(),
  default_max_age: z.number().int().min(0).optional(),
  require_auth_time: z.boolean().optional(),
});

export type ClientMetadata = z.output<typeof clientMetadataSchema>;

export interface MetadataRules {
  /** Scopes the client may ask for. */
  allowedScopes: readonly string[];
  /** Document clients (CIMD) may not use shared secrets. */
  forbidSharedSecrets?: boolean;
}

function fail(issue: z.core.$ZodIssue): never {
  const path = issue.path.join('.');
  const message = `${path || 'metadata'}: ${issue.message}`;
  if (issue.path[0] === 'redirect_uris' || issue.path[0] === 'post_logout_redirect_uris') throw new InvalidRedirectUriError(message);
  throw new InvalidClientMetadataError(message);
}

/**
 * Validates what a client says about itself and returns the normalised metadata to hand
 * to oidc-provider: only known members, defaults made explicit, application_type native
 * where every redirect is loopback or private-use (so loopback ports match, RFC 8252 §7.3).
 */
export function validateClientMetadata(input: unknown, rules: MetadataRules): ClientMetadata {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidClientMetadataError('client metadata must be a JSON object');
  }
  const parsed = clientMetadataSchema.safeParse(input);
  if (!parsed.success) fail(parsed.error.issues[0] as z.core.$ZodIssue);
  const metadata = { ...parsed.data };

  const grantTypes = metadata.grant_types ?? ['authorization_code'];
  const usesCode = grantTypes.includes('authorization_code');
  const responseTypes = metadata.response_types ?? (usesCode ? ['code'] : []);
  if (usesCode !== responseTypes.includes('code')) {
    throw new InvalidClientMetadataError('grant_types and response_types disagree: authorization_code goes with response_types ["code"]');
  }
  if (grantTypes.includes('refresh_token') && !usesCode && !grantTypes.includes('urn:ietf:params:oauth:grant-type:device_code')) {
    throw new InvalidClientMetadataError('refresh_token is issued only with authorization_code or the device grant');
  }

  const redirects = metadata.redirect_uris ?? [];
  if (usesCode && redirects.length === 0) throw new InvalidRedirectUriError('redirect_uris is required for authorization_code');
  if (!usesCode && redirects.length > 0) throw new InvalidClientMetadataError('redirect_uris given without authorization_code');
  const kinds = redirects.map(classifyRedirectUri);
  for (const uri of metadata.post_logout_redirect_uris ?? []) classifyRedirectUri(uri);

  const authMethod = metadata.token_endpoint_auth_method ?? 'client_secret_basic';
  for (const grant of ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'] as const) {
    if (grantTypes.includes(grant) && authMethod === 'none') {
      throw new InvalidClientMetadataError(`${grant} needs an authenticated client (token_endpoint_auth_method other than none)`);
    }
  }
  if (authMethod === 'private_key_jwt' && !metadata.jwks && !metadata.jwks_uri) {
    throw new InvalidClientMetadataError('private_key_jwt needs jwks or jwks_uri');
  }
  if (metadata.jwks && metadata.jwks_uri) throw new InvalidClientMetadataError('jwks and jwks_uri are mutually exclusive');
  if (rules.forbidSharedSecrets && (authMethod === 'client_secret_basic' || authMethod === 'client_secret_post')) {
    throw new InvalidClientMetadataError('token_endpoint_auth_method must be none or private_key_jwt: no shared secrets');
  }

  if (metadata.scope !== undefined) {
    const allowed = new Set(rules.allowedScopes);
    const refused = metadata.scope.split(' ').filter((s) => s && !allowed.has(s));
    if (refused.length) throw new InvalidClientMetadataError(`scope not allowed for this client: ${refused.join(' ')}`);
  }

  const native = kinds.length > 0 && kinds.every((k) => k !== 'https');
  const applicationType = metadata.application_type ?? (native ? 'native' : 'web');
  if (applicationType === 'web' && kinds.some((k) => k !== 'https')) {
    throw new InvalidRedirectUriError('web clients must use https redirect_uris; loopback and private-use schemes are for native clients');
  }

  return {
    ...metadata,
    grant_types: grantTypes,
    response_types: responseTypes,
    token_endpoint_auth_method: authMethod,
    application_type: applicationType,
    redirect_uris: redirects,
  };
}
