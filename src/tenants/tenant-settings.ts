import { z } from 'zod';
import { isValidNetworkAllowlistEntry } from '../registration/cimd/address-policy.ts';
import { mfaSettingsSchema } from '../interactions/mfa/mfa-settings.ts';
import { brandingSchema, consentSettingsSchema } from '../interactions/page-settings.ts';
import { upstreamIdpsSchema } from '../interactions/upstream/upstream-settings.ts';
import { rateLimitsSchema } from '../http/rate-limit-settings.ts';
import { keyRotationSettingsSchema } from '../keys/rotation-settings.ts';

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
  /** Clients that may get tokens for this resource; absent: every client of the tenant. */
  allowedClients: z.array(z.string().min(1).max(2048)).optional(),
  /**
   * The resource server's own clients for RFC 7662 introspection: a client named here may
   * introspect only tokens for the resources that name it (src/tenants/introspection-policy.ts).
   */
  introspectionClients: z.array(z.string().min(1).max(2048)).optional(),
});
export type ResourceSettings = z.output<typeof resourceSchema>;

/** Who may register a client by itself (RFC 7591), per tenant. */
export const registrationSchema = z.object({
  /**
   * closed: no self-registration; open: anyone (with the abuse limits);
   * initial-access-token: a token from the operator (RFC 7591 §3.1);
   * software-statement: a JWT signed by a trusted publisher (RFC 7591 §2.3).
   */
  mode: z.enum(['closed', 'open', 'initial-access-token', 'software-statement']).default('closed'),
  /** Publishers whose software statements are accepted: issuer and its public keys. */
  trustedPublishers: z
    .array(z.object({
      issuer: z.string().min(1).max(2048),
      jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }),
    }))
    .default([]),
  /** Scopes a self-registered client may ask for; defaults to every scope of the tenant. */
  allowedScopes: z.array(scopeToken).optional(),
  limits: z
    .object({
      /** Registrations one IP address may make per hour. */
      perIpPerHour: z.number().int().min(1).max(100_000).default(20),
      /** Self-registered clients the tenant may hold. */
      maxClients: z.number().int().min(1).max(10_000_000).default(10_000),
      /** A self-registered client never used, or unused this long, is deleted. */
      unusedClientDays: z.number().int().min(1).max(3650).default(30),
    })
    .prefault({}),
}).prefault({});

/** Client ID Metadata Documents: https URL client_ids fetched by the server (MCP 2025-11-25). */
export const clientIdMetadataDocumentSchema = z.object({
  enabled: z.boolean().default(false),
  /** Which hosts may serve documents: any (that passes the SSRF guard), an allowlist or a denylist. */
  hosts: z
    .object({
      mode: z.enum(['any', 'allowlist', 'denylist']).default('any'),
      list: z.array(z.string().min(1).max(253)).default([]),
    })
    .prefault({}),
  /**
   * Hosts or CIDR ranges that may resolve to otherwise refused addresses (loopback, private,
   * link-local): for documents served inside a private network. Empty by default.
   */
  privateNetworkAllowlist: z
    .array(z.string().min(1).max(253).refine(isValidNetworkAllowlistEntry, 'must be a host name, an IP address or a CIDR range'))
    .default([]),
  /** Bounds on how long a fetched document is cached, whatever its HTTP caching headers say. */
  cacheSeconds: z
    .object({ min: z.number().int().min(0).default(60), max: z.number().int().min(1).max(7 * 86_400).default(86_400) })
    .prefault({})
    .refine((c) => c.min <= c.max, 'min must not exceed max'),
}).prefault({});

/** An issuer whose JWTs a tenant accepts as subject tokens (RFC 8693 subject_token_type jwt). */
const trustedIssuerSchema = z.object({
  issuer: z.string().min(1).max(2048),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }),
  /** The audience its JWTs must carry to be accepted here (usually this tenant's issuer). */
  audience: z.string().min(1).max(2048),
});

/** RFC 8693 token exchange: who may act for whom, towards which resources. */
export const tokenExchangeSchema = z.object({
  enabled: z.boolean().default(false),
  /** Longest delegation chain (nested act claims) an issued token may carry. */
  maxChainDepth: z.number().int().min(1).max(10).default(3),
  /**
   * Which clients may exchange tokens, and for which target resources (`*`: any of the
   * tenant's resources). A client in no rule gets unauthorized_client.
   */
  rules: z
    .array(z.object({
      client: z.string().min(1).max(2048),
      audiences: z.array(z.string().min(1).max(2048)).min(1),
      /** Issue without an act claim (the token looks like the subject's own). Off by default. */
      impersonation: z.boolean().default(false),
    }))
    .default([]),
  trustedIssuers: z.array(trustedIssuerSchema).default([]),
}).prefault({});

/**
 * Identity Assertion JWT Authorization Grants (draft-ietf-oauth-identity-assertion-authz-grant):
 * `issue` as the enterprise IdP (through token exchange), `accept` as a resource's AS
 * (through the RFC 7523 jwt-bearer grant). src/grants/id-jag.
 */
export const idJagSchema = z.object({
  /**
   * Which of this tenant's clients may get ID-JAGs for which authorization server, and as
   * which client there (the draft's client ID mapping). The client also needs a
   * tokenExchange rule naming the audience (or `*`).
   */
  issue: z
    .array(z.object({
      /** The target authorization server's issuer identifier (RFC 8414): the request's `audience`, the ID-JAG's `aud`. */
      audience: z.string().min(1).max(2048),
      /** The requesting client here. */
      client: z.string().min(1).max(2048),
      /** Its client_id at the target; absent: the same id (a CIMD URL is one namespace). */
      clientId: z.string().min(1).max(2048).optional(),
      /** Resources at the target it may name; absent: any, or none. When set, one must be named. */
      resources: z.array(z.string().min(1).max(2048)).min(1).optional(),
      /** Scopes (at the target) an ID-JAG may carry; none unless listed. */
      scopes: z.array(scopeToken).default([]),
      /** RS256 by default: every JOSE stack verifies it. Must be one of signingAlgorithms. */
      signingAlgorithm: z.enum(SIGNING_ALGORITHMS).default('RS256'),
      /** Lifetime in seconds: the ID-JAG is a one-time grant, redeemed at once. */
      ttl: z.number().int().min(10).max(3600).default(300),
    }))
    .default([])
    .refine((targets) => new Set(targets.map((t) => JSON.stringify([t.client, t.audience]))).size === targets.length, 'one entry per client and audience'),
  accept: z
    .object({
      /** Registers the jwt-bearer grant on this tenant. */
      enabled: z.boolean().default(false),
      /** IdPs whose ID-JAGs are accepted, with their public keys. Never this tenant itself. */
      trustedIssuers: z
        .array(z.object({
          issuer: z.string().min(1).max(2048),
          jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown()).refine((k) => !('d' in k), 'public keys only')).min(1) }),
        }))
        .default([]),
      clockSkewSeconds: z.number().int().min(0).max(300).default(60),
      /** Longest exp − iat accepted: bounds how long a used jti must be remembered. */
      maxLifetimeSeconds: z.number().int().min(30).max(3600).default(600),
    })
    .prefault({}),
}).prefault({});

export type IdJagSettings = z.output<typeof idJagSchema>;

/** RFC 8628 device authorization grant: devices without a browser sign in through a person. */
export const deviceFlowSchema = z.object({
  enabled: z.boolean().default(false),
  /** Device code (and user code) lifetime. */
  codeTtl: z.number().int().min(60).max(3600).default(600),
  /** The polling interval devices are told to keep; each too-early poll adds 5 s. */
  interval: z.number().int().min(1).max(60).default(5),
  /** User-code attempts per address and per browser session, per window. */
  attempts: z.number().int().min(1).max(1000).default(10),
  attemptWindowSeconds: z.number().int().min(10).max(86_400).default(600),
}).prefault({});

export type DeviceFlowSettings = z.output<typeof deviceFlowSchema>;
export type TokenExchangeSettings = z.output<typeof tokenExchangeSchema>;
export type RegistrationSettings = z.output<typeof registrationSchema>;
export type ClientIdMetadataDocumentSettings = z.output<typeof clientIdMetadataDocumentSchema>;

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
      /**
       * A public client presenting a refresh token again this soon after it was rotated (a
       * retry that lost the answer) gets the same new pair instead of having its grant
       * revoked for reuse. 0 turns the grace off.
       */
      refreshRetryGrace: z.number().int().min(0).max(60).default(10),
      interaction: seconds(600, DAY),
      session: seconds(14 * DAY, 365 * DAY),
      grant: seconds(14 * DAY, 365 * DAY),
    })
    .prefault({}),
  /** Scopes offered besides the OpenID ones (openid, profile, email, offline_access). */
  scopes: z.array(scopeToken).default([]),
  resources: z.array(resourceSchema).default([]),
  registration: registrationSchema,
  tokenExchange: tokenExchangeSchema,
  deviceFlow: deviceFlowSchema,
  clientIdMetadataDocuments: clientIdMetadataDocumentSchema,
  idJag: idJagSchema,
  branding: brandingSchema,
  consent: consentSettingsSchema,
  mfa: mfaSettingsSchema,
  upstreamIdps: upstreamIdpsSchema,
  /** Request rate limits per endpoint (src/http/rate-limit.ts). */
  rateLimits: rateLimitsSchema,
  /** Signing-key rotation schedule and retention (src/keys/rotation-settings.ts). */
  keys: keyRotationSettingsSchema,
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
  s.idJag.issue.forEach((target, i) => {
    if (!s.signingAlgorithms.includes(target.signingAlgorithm)) {
      ctx.addIssue({ code: 'custom', path: ['idJag', 'issue', i, 'signingAlgorithm'], message: 'must be one of signingAlgorithms' });
    }
  });
});

export type TenantSettings = z.output<typeof tenantSettingsSchema>;
export type TenantSettingsInput = z.input<typeof tenantSettingsSchema>;

export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

/** The longest lifetime of anything a signing key signs: how long a retired key stays published. */
export function signedTokenRetentionSeconds(settings: TenantSettings): number {
  const perResource = settings.resources.map((r) => r.accessTokenTtl ?? 0);
  const longest = Math.max(settings.ttl.accessToken, settings.ttl.clientCredentials, settings.ttl.idToken, ...perResource) + 300;
  return Math.max(longest, settings.keys.retentionSeconds ?? 0);
}
