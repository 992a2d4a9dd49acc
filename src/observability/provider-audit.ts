import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { signInEvent, signInMethodOf, type AuditEvent, type AuditSink } from './audit.ts';

/**
 * The audit events oidc-provider's own endpoints give rise to: sign-ins and consent as an
 * interaction ends, refresh-token reuse, grant revocations and client registrations. Token
 * issuance is not audited one by one (it is the hot path; the access log and the
 * tokens-issued metric count it). Events never carry a token, code or secret.
 */
export function auditProviderEvents(provider: Provider, tenant: string, audit: AuditSink): void {
  // A lost audit event is logged like any server error (tenant-registry.ts).
  const record = (ctx: KoaContextWithOIDC, event: AuditEvent) => {
    audit.record(event).catch((auditErr: unknown) => provider.emit('server_error', ctx, auditErr));
  };

  provider.on('interaction.ended', (ctx: KoaContextWithOIDC) => {
    const result = ctx.oidc.result as { login?: { accountId?: unknown; amr?: unknown }; consent?: { grantId?: unknown } } | undefined;
    const login = result?.login;
    const method = signInMethodOf(Array.isArray(login?.amr) ? login.amr : undefined);
    if (method && typeof login?.accountId === 'string') {
      record(ctx, signInEvent({ tenant, method, userId: login.accountId, ip: ctx.ip }, 'success'));
    }
    const grantId = result?.consent?.grantId;
    if (typeof grantId === 'string') {
      record(ctx, {
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
    record(ctx, {
      type: 'refresh_token_reuse', tenant, outcome: 'failure', error: 'invalid_grant',
      client: ctx.oidc.client?.clientId, subject: token?.accountId, grantId: token?.grantId,
    });
  });

  // A grant and all its tokens revoked (revocation of a refresh token, code or token reuse).
  provider.on('grant.revoked', (ctx: KoaContextWithOIDC, grantId: string) => {
    record(ctx, { type: 'grant_revoked', tenant, outcome: 'success', grantId, client: ctx.oidc.client?.clientId });
  });

  // RFC 7591 / 7592: who registered, changed or deleted which client (never its secret).
  const registration = (type: string) => (ctx: KoaContextWithOIDC, client: { clientId: string }) => {
    record(ctx, { type, tenant, outcome: 'success', client: client.clientId, ip: ctx.ip });
  };
  provider.on('registration_create.success', registration('client_registered'));
  provider.on('registration_update.success', registration('client_updated'));
  provider.on('registration_delete.success', registration('client_deleted'));
}
