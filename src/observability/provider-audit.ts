import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { signInEvent, signInMethodOf, type AuditEvent, type AuditSink } from './audit.ts';
import { tokenFieldsOf } from './token-response.ts';

/** What revocation (RFC 7009) may destroy, by oidc-provider model, as `token_revoked` names it. */
const REVOCABLE: Record<string, string> = { AccessToken: 'access_token', ClientCredentials: 'client_credentials', RefreshToken: 'refresh_token' };

interface IssuedAccessToken {
  accountId?: unknown;
  grantId?: unknown;
  scope?: unknown;
  aud?: unknown;
  resourceServer?: { audience?: unknown };
}

/**
 * `token_issued`, for a token endpoint answer: the grant type, the client, the subject and
 * grant when there is one, the scopes and audience of the access token, and which token
 * fields the answer held. Never a token, nor an opaque token's id (which is the token).
 */
export function tokenIssuedEvent(ctx: KoaContextWithOIDC, tenant: string): AuditEvent {
  const body = (ctx.body ?? {}) as Record<string, unknown>;
  const { entities } = ctx.oidc;
  const access = (entities.AccessToken ?? entities.ClientCredentials) as IssuedAccessToken | undefined;
  const subject = access?.accountId ?? entities.Account?.accountId;
  const grantId = access?.grantId ?? entities.Grant?.jti;
  const scope = typeof body.scope === 'string' ? body.scope : access?.scope;
  const audience = access?.resourceServer?.audience ?? access?.aud;
  const event: AuditEvent = {
    type: 'token_issued', tenant, outcome: 'success',
    grantType: String(ctx.oidc.params?.grant_type),
    client: ctx.oidc.client?.clientId,
    tokens: tokenFieldsOf(body),
    scopes: typeof scope === 'string' ? scope.split(' ').filter(Boolean) : [],
    ip: ctx.ip,
  };
  if (typeof subject === 'string') event.subject = subject;
  if (typeof grantId === 'string') event.grantId = grantId;
  if (typeof audience === 'string' || Array.isArray(audience)) event.audience = audience;
  // RFC 8693 answers say what the access_token field holds (an access token, an ID-JAG).
  if (typeof body.issued_token_type === 'string') event.issuedTokenType = body.issued_token_type;
  if (typeof body.token_type === 'string') event.tokenType = body.token_type;
  if (typeof body.expires_in === 'number') event.expiresIn = body.expires_in;
  return event;
}

/**
 * The audit events oidc-provider's own endpoints give rise to: sign-ins and consent as an
 * interaction ends, tokens issued and revoked, refresh-token reuse, grant revocations and
 * client registrations. Events never carry a token, code or secret.
 */
export function auditProviderEvents(provider: Provider, tenant: string, audit: AuditSink): void {
  // A lost audit event is logged like any server error (tenant-registry.ts). Listeners of
  // provider events cannot be awaited; the middleware below awaits.
  const record = (ctx: KoaContextWithOIDC, event: AuditEvent): Promise<void> =>
    audit.record(event).catch((auditErr: unknown) => {
      provider.emit('server_error', ctx, auditErr);
    });

  // Every successful token endpoint answer (each grant type, ours included), and every token
  // an RFC 7009 request destroyed: recorded before the answer leaves (the request awaits its
  // event; group commit in audit-chain.ts keeps that cheap), so none is lost with the process.
  // A refresh retry answered from the retry cache (refresh-retry.ts) never gets here: it
  // issues nothing new. Revocation answers 200 for unknown and refused tokens too (RFC 7009
  // §2.2): only a token this request destroyed counts.
  const destroyed = new WeakSet<object>();
  const remember = (token: object) => {
    destroyed.add(token);
  };
  provider.on('access_token.destroyed', remember);
  provider.on('client_credentials.destroyed', remember);
  provider.on('refresh_token.destroyed', remember);
  provider.use(async (ctx, next) => {
    await next();
    const oidcCtx = ctx as KoaContextWithOIDC;
    const route = (oidcCtx.oidc as KoaContextWithOIDC['oidc'] | undefined)?.route;
    if (ctx.status !== 200 || (route !== 'token' && route !== 'revocation')) return;
    if (route === 'token') {
      await record(oidcCtx, tokenIssuedEvent(oidcCtx, tenant));
      return;
    }
    for (const [model, token] of Object.entries(REVOCABLE)) {
      const entity = oidcCtx.oidc.entities[model as 'AccessToken'] as (IssuedAccessToken & object) | undefined;
      if (!entity || !destroyed.has(entity)) continue;
      const event: AuditEvent = { type: 'token_revoked', tenant, outcome: 'success', client: oidcCtx.oidc.client?.clientId, token, ip: ctx.ip };
      if (typeof entity.accountId === 'string') event.subject = entity.accountId;
      if (typeof entity.grantId === 'string') event.grantId = entity.grantId;
      await record(oidcCtx, event);
    }
  });

  provider.on('interaction.ended', (ctx: KoaContextWithOIDC) => {
    const result = ctx.oidc.result as { login?: { accountId?: unknown; amr?: unknown }; consent?: { grantId?: unknown } } | undefined;
    const login = result?.login;
    const method = signInMethodOf(Array.isArray(login?.amr) ? login.amr : undefined);
    if (method && typeof login?.accountId === 'string') {
      void record(ctx, signInEvent({ tenant, method, userId: login.accountId, ip: ctx.ip }, 'success'));
    }
    const grantId = result?.consent?.grantId;
    if (typeof grantId === 'string') {
      void record(ctx, {
        type: 'consent_given', tenant, outcome: 'success', grantId,
        client: ctx.oidc.client?.clientId, subject: ctx.oidc.session?.accountId, ip: ctx.ip,
      });
    }
  });

  // RFC 9700 §4.14.2: a replayed (already rotated) refresh token revokes its whole grant
  // (oidc-provider's refresh_token grant, or our adapter's consume() when two uses race;
  // both say "refresh token already used").
  provider.on('grant.error', (ctx: KoaContextWithOIDC, err: unknown) => {
    if (!(err instanceof errors.InvalidGrant) || (err as { error_detail?: unknown }).error_detail !== 'refresh token already used') return;
    const token = ctx.oidc.entities.RefreshToken;
    void record(ctx, {
      type: 'refresh_token_reuse', tenant, outcome: 'failure', error: 'invalid_grant',
      client: ctx.oidc.client?.clientId, subject: token?.accountId, grantId: token?.grantId,
    });
  });

  // A grant and all its tokens revoked (revocation of a refresh token, code or token reuse).
  provider.on('grant.revoked', (ctx: KoaContextWithOIDC, grantId: string) => {
    void record(ctx, { type: 'grant_revoked', tenant, outcome: 'success', grantId, client: ctx.oidc.client?.clientId });
  });

  // RFC 7591 / 7592: who registered, changed or deleted which client (never its secret).
  const registration = (type: string) => (ctx: KoaContextWithOIDC, client: { clientId: string }) => {
    void record(ctx, { type, tenant, outcome: 'success', client: client.clientId, ip: ctx.ip });
  };
  provider.on('registration_create.success', registration('client_registered'));
  provider.on('registration_update.success', registration('client_updated'));
  provider.on('registration_delete.success', registration('client_deleted'));
}
