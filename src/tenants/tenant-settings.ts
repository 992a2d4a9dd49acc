import { z } from 'zod';

const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope is one RFC 6749 §3.3 token');

export const SIGNING_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** A protected resource (an MCP server or API) that tokens may be issued for (RFC 8707). */
export const resourceSchema = z.object({
  /** The canonical resource URI; clients name it in `resource` exactly. */
  uri: z.url({ protocol: /^https?$/ }).refine((u) => !u.includes('#'), 'must not contain a fragment'),
  name: z.string().max(100).optional(),
  /** Scopes a token for this resource may carry. */
  scopes: z.array(scopeToken).default([]),
  /** RFC 9068 JWT (verifiable offline) or opaque (introspection; revocation seen at once). */
  accessTokenFormat: z.enum(['jwt', 'opaque']).default('jwt'),
  /** Access token lifetime in seconds for this resource; defaults to the tenant's. */
  accessTokenTtl: z.number().int().min(30).max(86_400).optional(),
});
export type ResourceSettings = z.output<typeof resourceSchema>;

const seconds = (fallback: number, max: number) => z.number().int().min(1).max(max).default(fallback);
const DAY = 86_400;

/**
 * One tenant's settings, validated whenever a tenant record is read (the store is an input
 * edge too). Defaults are what a new tenant gets.
 */
export const tenantSettingsSchema = z.object({
  displayName: z.string().min(1).max(100).optional(),
  /** Signing keys kept active; RS256 is always present (widest support for id_tokens). */
  signingAlgorithms: z
    .array(z.enum(SIGNING_ALGORITHMS))
    .min(1)
    .default(['RS256', 'ES256'])
    .transform((algs) => [...new Set<SigningAlgorithm>(['RS256', ...algs])]),
  /** Signs JWT access tokens; ES256 measured ~45% faster than RS256 here (ARCHITECTURE.md). */
  accessTokenSigningAlgorithm: z.enum(SIGNING_ALGORITHMS).default('ES256'),
  ttl: z
    .object({
      accessToken: seconds(3600, DAY),
      clientCredentials: seconds(600, DAY),
      authorizationCode: seconds(60, 600),
      idToken: seconds(3600, DAY),
      refreshToken: seconds(14 * DAY, 365 * DAY),
      interaction: seconds(600, DAY),
      session: seconds(14 * DAY, 365 * DAY),
      grant: seconds(14 * DAY, 365 * DAY),
    })
    .prefault({}),
  /** Scopes offered besides the OpenID ones (openid, profile, email, offline_access). */
  scopes: z.array(scopeToken).default([]),
  resources: z.array(resourceSchema).default([]),
}).superRefine((s, ctx) => {
  if (!s.signingAlgorithms.includes(s.accessTokenSigningAlgorithm)) {
    ctx.addIssue({
      code: 'custom',
      path: ['accessTokenSigningAlgorithm'],
      message: 'must be one of signingAlgorithms',
    });
  }
  const uris = s.resources.map((r) => r.uri);
  if (new Set(uris).size !== uris.length) {
    ctx.addIssue({ code: 'custom', path: ['resources'], message: 'resource URIs must be unique' });
  }
});

export type TenantSettings = z.output<typeof tenantSettingsSchema>;
export type TenantSettingsInput = z.input<typeof tenantSettingsSchema>;

export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

/** The longest lifetime of anything a signing key signs: how long a retired key stays published. */
export function signedTokenRetentionSeconds(settings: TenantSettings): number {
  const perResource = settings.resources.map((r) => r.accessTokenTtl ?? 0);
  return Math.max(settings.ttl.accessToken, settings.ttl.clientCredentials, settings.ttl.idToken, ...perResource) + 300;
}
