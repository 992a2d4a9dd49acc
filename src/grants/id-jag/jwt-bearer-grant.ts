import type { JSONWebKeySet } from 'jose';
import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { AuditEvent, AuditSink } from '../../observability/audit.ts';
import type { PolicyHooks } from '../../policy/hooks.ts';
import { resourceServerFor } from '../../tenants/resource-servers.ts';
import type { TenantSettings } from '../../tenants/tenant-settings.ts';
import { exchangeRefused } from '../token-exchange/subject-token.ts';
import { errorCode, JWT_BEARER_GRANT, requiredParam, scopeList, scopesWithin, singleParam } from './id-jag.ts';
import { useOnce } from './replay.ts';
import { createIdJagVerifier, IdJagRejectedError, type IdJagClaims } from './verify-id-jag.ts';

const PARAMETERS = ['assertion', 'resource', 'scope'];

export interface JwtBearerDeps {
  tenantId: string;
  issuer: string;
  settings: TenantSettings;
  policy: PolicyHooks;
  audit: AuditSink;
}

/**
 * RFC 8707 at the jwt-bearer grant: one resource per token. The request may name one of the
 * assertion's resources; otherwise the assertion must name exactly one.
 */
function targetResource(requested: string | undefined, claims: IdJagClaims): string {
  if (requested !== undefined) {
    if (claims.resources && !claims.resources.includes(requested)) {
      throw new errors.InvalidTarget(`the assertion does not grant access to ${requested}`);
    }
    return requested;
  }
  if (claims.resources?.length === 1 && claims.resources[0]) return claims.resources[0];
  throw new errors.InvalidTarget(claims.resources ? 'the assertion names several resources; name one with resource' : 'name the resource with resource');
}

/**
 * The resource AS side of draft-ietf-oauth-identity-assertion-authz-grant: an ID-JAG from a
 * trusted IdP, presented by the client it names (RFC 7523 §2.1 jwt-bearer), becomes an access
 * token for one of this tenant's resources, for the assertion's subject, with at most its
 * scopes. Each ID-JAG is redeemed once. No refresh token: each new token needs a fresh ID-JAG,
 * so the IdP keeps the say over the user's access.
 */
export function registerJwtBearer(provider: Provider, deps: JwtBearerDeps): void {
  const { settings } = deps;
  const accept = settings.idJag.accept;
  const verify = createIdJagVerifier({
    audience: deps.issuer,
    trustedIssuers: accept.trustedIssuers.map((t) => ({ issuer: t.issuer, jwks: t.jwks as JSONWebKeySet })),
    clockSkewSeconds: accept.clockSkewSeconds,
    maxLifetimeSeconds: accept.maxLifetimeSeconds,
  });

  async function handler(ctx: KoaContextWithOIDC): Promise<void> {
    const client = ctx.oidc.client;
    if (!client) throw new errors.InvalidClient('client authentication is required');
    const event: AuditEvent = { type: 'id_jag_redeem', tenant: deps.tenantId, client: client.clientId, outcome: 'failure' };
    try {
      // draft §7.1: the client must authenticate; a public client uses the code flow here.
      if (client.clientAuthMethod === 'none') throw new errors.UnauthorizedClient('ID-JAGs are accepted from confidential clients only');
      let claims: IdJagClaims;
      try {
        claims = await verify(requiredParam(ctx, 'assertion'));
      } catch (err) {
        if (err instanceof IdJagRejectedError) {
          event.reason = err.code;
          throw exchangeRefused(err.message);
        }
        throw err;
      }
      Object.assign(event, { issuer: claims.iss, subject: claims.sub, jti: claims.jti });

      // draft §4.4.1: the assertion is bound to the client it names; RFC 6749 §5.2 calls a
      // grant "issued to another client" invalid_grant. Checked before the jti is spent, so a
      // stolen assertion presented by another client does not burn the rightful one.
      if (claims.clientId !== client.clientId) {
        event.reason = 'OTHER_CLIENT';
        throw exchangeRefused('the assertion was issued to another client');
      }

      const resource = targetResource(singleParam(ctx, 'resource'), claims);
      event.resource = resource;
      const resourceServer = await resourceServerFor({ tenantId: deps.tenantId, settings, policy: deps.policy }, client.clientId, resource);
      const offered = scopeList(resourceServer.scope);
      const ceiling = claims.scopes.filter((s) => offered.includes(s));
      const scopes = scopesWithin(singleParam(ctx, 'scope'), ceiling, 'what the assertion grants for this resource');
      event.scopes = scopes;

      // Single use, last: every other check has passed, so only a redeemable assertion is spent.
      if (!(await useOnce(provider, claims, claims.exp + accept.clockSkewSeconds))) {
        event.reason = 'REPLAYED';
        throw exchangeRefused('the assertion has been used already');
      }

      const ttl = resourceServer.accessTokenTTL ?? settings.ttl.accessToken;
      // The grant backs only this token; it outlives it by a little so the token never
      // reads as inactive before its exp.
      // (BaseToken takes expiresIn; @types/oidc-provider does not declare it.)
      const grant = Object.assign(new provider.Grant({ accountId: claims.sub, clientId: client.clientId }), { expiresIn: ttl + 60 });
      grant.addResourceScope(resource, scopes.join(' '));
      const grantId = await grant.save();
      const token = new provider.AccessToken({
        accountId: claims.sub,
        client,
        grantId,
        scope: scopes.join(' ') || undefined,
        gty: JWT_BEARER_GRANT,
      });
      token.resourceServer = new provider.ResourceServer(resource, resourceServer);
      ctx.oidc.entity('AccessToken', token);
      const value = await token.save();

      ctx.body = {
        access_token: value,
        token_type: 'Bearer',
        expires_in: token.expiration,
        ...(token.scope ? { scope: token.scope } : {}),
      };
      await deps.audit.record({ ...event, outcome: 'success' });
    } catch (err) {
      await deps.audit.record({ ...event, outcome: 'failure', error: errorCode(err) });
      throw err;
    }
  }

  provider.registerGrantType(JWT_BEARER_GRANT, handler, PARAMETERS);
}
