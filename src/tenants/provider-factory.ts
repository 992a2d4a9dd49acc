import Provider, { errors, type Account, type AdapterFactory, type Configuration, type CookiesSetOptions, type JWKS, type KoaContextWithOIDC } from 'oidc-provider';
import { scopeDescription } from '../interactions/consent-step.ts';
import { renderDeviceCodeEntry, renderDeviceConfirm, renderDeviceSuccess } from '../interactions/device-pages.ts';
import { renderLoggedOutPage, renderLogoutPage } from '../interactions/logout-pages.ts';
import { escapeHtml, pageLook, renderErrorPage, renderPage, type PageLook } from '../interactions/views.ts';
import { prefersHtml } from '../http/error-response.ts';
import type { JSONWebKeySet, JWK } from 'jose';
import { createIdJagIssuer } from '../grants/id-jag/issue-id-jag.ts';
import { registerJwtBearer } from '../grants/id-jag/jwt-bearer-grant.ts';
import { registerTokenExchange, TOKEN_EXCHANGE_GRANT } from '../grants/token-exchange/token-exchange-grant.ts';
import { retryKey, sealAnswer, type RetryCache } from '../grants/refresh-retry/refresh-retry.ts';
import type { AuditSink } from '../observability/audit.ts';
import { auditProviderEvents } from '../observability/provider-audit.ts';
import type { PolicyHooks } from '../policy/hooks.ts';
import { assignedClientId } from '../registration/abuse/assigned-client-id.ts';
import { protectClientSecrets } from '../registration/client-secrets.ts';
import {
  CIMD_FETCH_RESPONSE_BODY_LIMITS,
  clientIdMetadataDocumentFeature,
  createTenantFetch,
  type CimdRefusalListener,
} from '../registration/cimd/cimd-feature.ts';
import type { DocumentCache } from '../registration/cimd/document-cache.ts';
import { registrableScopes } from '../registration/registration-gate.ts';
import { consentGrantLoader } from './consent-grant.ts';
import { publicJwk } from '../keys/public-jwk.ts';
import { mayIntrospect } from './introspection-policy.ts';
import { resourceServerFor } from './resource-servers.ts';
import { OIDC_SCOPES, type TenantSettings } from './tenant-settings.ts';

export interface AccountClaims {
  sub: string;
  [claim: string]: unknown;
}

/** Finds a tenant's user by subject, for id_tokens and userinfo. */
export type AccountLookup = (accountId: string) => Promise<AccountClaims | undefined>;

export interface TenantProviderInput {
  tenantId: string;
  issuer: string;
  settings: TenantSettings;
  /** Private signing JWKs: active keys without key_ops, published-only keys with ['verify']. */
  jwks: JWKS;
  adapter: AdapterFactory;
  findAccount: AccountLookup;
  cookieKeys: string[];
  policy: PolicyHooks;
  /** Shared cache of fetched Client ID Metadata Documents (Redis in production). */
  documentCache: DocumentCache;
  /** Extra CA certificates trusted for outbound fetches (private PKI, tests). */
  fetchCa: string | Buffer | undefined;
  onCimdRefused: CimdRefusalListener;
  audit: AuditSink;
  retryCache: RetryCache;
  onRetryCacheError: (err: unknown) => void;
}

/**
 * Standard claims released per scope (OIDC Core §5.4). `amr` (OIDC Core §2, RFC 8176) rides
 * with openid: id_tokens say how the user signed in (pwd, otp, mfa, fed); oidc-provider
 * releases a claim only when a scope (or the disabled claims parameter) names it.
 */
const CLAIMS_BY_SCOPE = {
  openid: ['sub', 'amr'],
  email: ['email', 'email_verified'],
  profile: ['name', 'family_name', 'given_name', 'preferred_username', 'picture', 'locale', 'zoneinfo', 'updated_at'],
};

/** Builds the oidc-provider configuration of one tenant: only features that really work. */
export function providerConfiguration(input: TenantProviderInput): Configuration {
  const { settings, policy, tenantId } = input;
  const look = pageLook(tenantId, settings);
  const sessionCookie = { signed: true, httpOnly: true, sameSite: 'lax', path: `/t/${tenantId}` } as const;

  const cimdInput = { tenantId, settings: settings.clientIdMetadataDocuments, allowedScopes: registrableScopes(settings) };

  return {
    adapter: input.adapter,
    // Every outbound fetch (CIMD documents, clients' jwks_uri, sector_identifier_uri) goes
    // through the SSRF guard: pinned DNS, refused private ranges, no redirects, size and time caps.
    fetch: createTenantFetch({ ...cimdInput, cache: input.documentCache, ca: input.fetchCa, onRefused: input.onCimdRefused }),
    fetchResponseBodyLimits: CIMD_FETCH_RESPONSE_BODY_LIMITS,
    jwks: input.jwks,
    cookies: {
      keys: input.cookieKeys,
      // Tenants share a host: each tenant's cookies stay under its own path, so one tenant's
      // session never overwrites (or is sent to) another's.
      long: sessionCookie,
      short: { signed: true, httpOnly: true, sameSite: 'lax', path: `/t/${tenantId}` },
    },
    // RFC 7519 §4.1.4-5 "some small leeway": client assertions (and hints) from clocks up to a
    // minute off are accepted; used jtis are kept that much longer too (oidc-provider).
    clockTolerance: 60,
    // OAuth 2.1: the code flow only (no implicit, no hybrid).
    responseTypes: ['code'],
    scopes: [...OIDC_SCOPES, ...settings.scopes],
    claims: CLAIMS_BY_SCOPE,
    // OAuth 2.1 / RFC 9700 §2.1.1: PKCE for every client (oidc-provider only offers S256).
    pkce: { required: () => true },
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    // Browser-based clients may call the token, revocation and userinfo endpoints from the
    // origin of one of their redirect URIs, and from nowhere else.
    clientBasedCORS: (_ctx, origin, client) =>
      origin !== 'null' && (client.redirectUris ?? []).some((uri) => URL.parse(uri)?.origin === origin),
    // Kept from registrations and shown on consent (RFC 7591 §2).
    extraClientMetadata: { properties: ['software_id', 'software_version'] },
    clientDefaults: {
      grant_types: ['authorization_code'],
      id_token_signed_response_alg: 'RS256',
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    ttl: {
      AccessToken: settings.ttl.accessToken,
      AuthorizationCode: settings.ttl.authorizationCode,
      ClientCredentials: settings.ttl.clientCredentials,
      IdToken: settings.ttl.idToken,
      Interaction: settings.ttl.interaction,
      Session: settings.ttl.session,
      // An exchange's grant lives as long as the token it backs, not like a user's consent.
      Grant: (ctx) => (ctx?.oidc?.params?.grant_type === TOKEN_EXCHANGE_GRANT ? longestAccessTokenTtl(settings) : settings.ttl.grant),
      RefreshToken: settings.ttl.refreshToken,
      DeviceCode: settings.deviceFlow.codeTtl,
    },
    // Rotate on every use; reuse of a rotated one revokes the grant (oidc-provider + our consume).
    rotateRefreshToken: true,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // RFC 7662 §4: who may learn about which token (own tokens; resource servers bound
        // to resources see only those resources' tokens).
        allowedPolicy: async (_ctx, client, token) =>
          mayIntrospect(settings.resources, { clientId: client.clientId, clientAuthMethod: client.clientAuthMethod }, { clientId: token.clientId, aud: 'aud' in token ? token.aud : undefined }),
      },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: a client revokes only tokens issued to it.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => renderLogoutPage(ctx, look, form),
        // "No, stay signed in" ends here too, the OP session kept (with an id_token_hint, only
        // that client's part of it is ended): never tell a person who is still signed in that
        // they are signed out.
        postLogoutSuccessSource: async (ctx) => {
          const session = await ctx.oidc.provider.Session.get(ctx);
          if (!session.accountId) return renderLoggedOutPage(ctx, look);
          return renderStillSignedInPage(ctx, look, ctx.oidc.client ? ctx.oidc.client.clientName ?? ctx.oidc.client.clientId : undefined);
        },
      },
      // RFC 7591/7592. Requests reach oidc-provider only after src/registration's checks.
      registration: {
        enabled: settings.registration.mode !== 'closed',
        initialAccessToken: settings.registration.mode === 'initial-access-token',
        issueRegistrationAccessToken: true,
        // The registration gate chooses the id first (src/registration/abuse/assigned-client-id.ts).
        idFactory: assignedClientId,
      },
      registrationManagement: {
        enabled: settings.registration.mode !== 'closed',
        rotateRegistrationAccessToken: true,
      },
      // Client ID Metadata Documents (MCP 2025-11-25): https URL client_ids, guarded and per tenant policy.
      clientIdMetadataDocument: clientIdMetadataDocumentFeature({ ...cimdInput, policy, onRefused: input.onCimdRefused }),
      // RFC 8628: user codes of 8 letters without vowels (no words, no look-alikes), XXXX-XXXX.
      deviceFlow: {
        enabled: settings.deviceFlow.enabled,
        charset: 'base-20',
        mask: '****-****',
        userCodeInputSource: async (ctx, form, _out, err) => {
          await keepDeviceSession(ctx, settings.ttl.session, sessionCookie);
          renderDeviceCodeEntry(ctx, look, form, err);
        },
        userCodeConfirmSource: async (ctx, form, client, deviceInfo, userCode) => renderDeviceConfirm(ctx, look, form, {
          clientName: client.clientName ?? client.clientId,
          userCode,
          scopes: String((ctx.oidc.entities.DeviceCode?.params as { scope?: unknown } | undefined)?.scope ?? '').split(' ').filter(Boolean)
            .map((scope) => ({ scope, description: scopeDescription(settings, scope) })),
          deviceInfo: deviceInfo as { ip?: string; ua?: string } | undefined,
        }),
        successSource: async (ctx) => renderDeviceSuccess(ctx, look, ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId ?? 'The device'),
      },
      // Off until tested end to end; sender-constrained tokens come with the agent work.
      dPoP: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // MCP clients send `resource` at /authorize and /token; a token request without it
        // after an authorization that named one is for that resource.
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator, client) =>
          resourceServerFor({ tenantId, settings, policy }, client.clientId, resourceIndicator),
      },
    },
    interactions: {
      url: async (_ctx, interaction) => `/t/${tenantId}/interaction/${interaction.uid}`,
    },
    // Identity chaining (ID-JAG draft §4): advertise what the token exchange can issue.
    ...(settings.idJag.issue.length
      ? { discovery: { identity_chaining_requested_token_types_supported: ['urn:ietf:params:oauth:token-type:id-jag'] } }
      : {}),
    loadExistingGrant: consentGrantLoader(tenantId, policy),
    // oidc-provider replaces a token's `extra` with what this returns when it formats the
    // token: keep what our grants set (the token-exchange act chain), in JWTs and introspection.
    extraTokenClaims: async (_ctx, token) => ('extra' in token ? (token.extra as Record<string, unknown> | undefined) : undefined),
    findAccount: async (_ctx: KoaContextWithOIDC, sub: string): Promise<Account | undefined> => {
      const claims = await input.findAccount(sub);
      if (!claims) return undefined;
      return { accountId: sub, claims: async () => claims };
    },
    renderError: async (ctx, out) => {
      // Errors oidc-provider cannot send to a validated redirect_uri (unknown client, bad
      // redirect_uri, ...): a browser gets a page with the escaped error and no link, others JSON.
      if (prefersHtml(ctx)) return renderErrorPage(ctx, look, out);
      ctx.type = 'json';
      ctx.body = out;
    },
  };
}

/** After "No, stay signed in" on the logout page (oidc-provider's end_session success route). */
function renderStillSignedInPage(ctx: KoaContextWithOIDC, look: PageLook, signedOutOf: string | undefined): void {
  renderPage(ctx, look, 'Still signed in', `<h1>Still signed in</h1>
${signedOutOf ? `<p>You are signed out of ${escapeHtml(signedOutOf)}.</p>` : ''}<p>You are still signed in to ${escapeHtml(look.name)}.</p>`);
}

/**
 * oidc-provider redraws the device code form after an error (a wrong code, GET /device/<x>)
 * with a fresh xsrf secret in the session. For a browser that brought no session cookie
 * (cookies blocked, a scripted post, a forged cookie) that session was never saved, and the
 * provider's later persist() throws a TypeError: a 500. Save it now and hand the browser its
 * cookie, so the redrawn form works.
 */
async function keepDeviceSession(ctx: KoaContextWithOIDC, ttl: number, cookie: CookiesSetOptions): Promise<void> {
  const session = ctx.oidc.session;
  if (!session || typeof session.exp === 'number') return;
  await session.save(ttl);
  ctx.oidc.cookies.set(ctx.oidc.provider.cookieName('session'), session.jti, cookie);
}

function longestAccessTokenTtl(settings: TenantSettings): number {
  return Math.max(settings.ttl.accessToken, ...settings.resources.map((r) => r.accessTokenTtl ?? 0));
}

/** The public half of the signing keys: what the tenant's own JWTs verify against. */
function publicJwks(jwks: JWKS): JSONWebKeySet {
  return { keys: jwks.keys.map((key) => publicJwk(key as JWK)) };
}

export function createTenantProvider(input: TenantProviderInput): Provider {
  const provider = new Provider(input.issuer, providerConfiguration(input));
  // oidc-provider leaves `interval` out of the device authorization response (RFC 8628
  // §3.2 then means 5 s); state the tenant's, which the polling guard enforces.
  provider.on('device_authorization.success', (_ctx, body: Record<string, unknown>) => {
    body.interval = input.settings.deviceFlow.interval;
  });
  // Keep a public client's freshly rotated pair for the retry grace (refresh-retry.ts).
  const grace = input.settings.ttl.refreshRetryGrace;
  if (grace > 0) {
    provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
      const old = (ctx.oidc.params as { grant_type?: unknown; refresh_token?: unknown } | undefined);
      const client = ctx.oidc.client;
      if (old?.grant_type !== 'refresh_token' || typeof old.refresh_token !== 'string' || !client) return;
      if (client.clientAuthMethod !== 'none') return;
      const body = ctx.body as Record<string, unknown>;
      const sealed = sealAnswer(old.refresh_token, { clientId: client.clientId, body });
      input.retryCache.set(retryKey(input.tenantId, old.refresh_token), sealed, grace * 1000).catch(input.onRetryCacheError);
    });
  }
  auditProviderEvents(provider, input.tenantId, input.audit);
  if (input.settings.tokenExchange.enabled) {
    registerTokenExchange(provider, {
      tenantId: input.tenantId,
      issuer: input.issuer,
      settings: input.settings,
      policy: input.policy,
      jwks: publicJwks(input.jwks),
      audit: input.audit,
      // draft-ietf-oauth-identity-assertion-authz-grant: this tenant as the enterprise IdP.
      ...(input.settings.idJag.issue.length ? {
        issueIdJag: createIdJagIssuer(provider, {
          tenantId: input.tenantId, issuer: input.issuer, settings: input.settings, policy: input.policy,
          jwks: publicJwks(input.jwks), signingJwks: input.jwks, audit: input.audit,
        }),
      } : {}),
    });
  }
  // ...and as a resource's AS, redeeming ID-JAGs at the RFC 7523 jwt-bearer grant.
  if (input.settings.idJag.accept.enabled) {
    registerJwtBearer(provider, { tenantId: input.tenantId, issuer: input.issuer, settings: input.settings, policy: input.policy, audit: input.audit });
  }
  // Forwarding headers reaching the provider are always ours (src/http/tenant-mount.ts).
  provider.proxy = true;
  protectClientSecrets(provider);
  // A path or method no route matches would get Koa's plain-text 404; answer it in the same
  // OAuth error JSON as every other error.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.status === 404 && ctx.body === undefined) {
      ctx.body = { error: 'invalid_request', error_description: 'no such endpoint' };
      ctx.status = 404;
    }
  });
  return provider;
}
