import type { JSONWebKeySet } from 'jose';
import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { AuditSink } from '../../observability/audit.ts';
import type { PolicyHooks } from '../../policy/hooks.ts';
import { resourceServerFor } from '../../tenants/resource-servers.ts';
import type { TenantSettings } from '../../tenants/tenant-settings.ts';
import { ID_JAG_TOKEN_TYPE } from '../id-jag/id-jag.ts';
import { chainDepth, delegationChain, mayAct, type ActClaim } from './delegation.ts';
import { exchangeRefused, resolveToken, TOKEN_TYPES, type TokenFacts } from './subject-token.ts';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

const PARAMETERS = [
  'subject_token',
  'subject_token_type',
  'actor_token',
  'actor_token_type',
  'requested_token_type',
  'resource',
  'audience',
  'scope',
];

export interface TokenExchangeDeps {
  tenantId: string;
  issuer: string;
  settings: TenantSettings;
  policy: PolicyHooks;
  /** The tenant's public signing keys, to verify its own JWTs presented as subject tokens. */
  jwks: JSONWebKeySet;
  audit: AuditSink;
  /** Answers requested_token_type id-jag (src/grants/id-jag); absent: that type is refused. */
  issueIdJag?: (ctx: KoaContextWithOIDC) => Promise<void>;
}

function param(ctx: KoaContextWithOIDC, name: string): string | undefined {
  const value = (ctx.oidc.params as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function required(ctx: KoaContextWithOIDC, name: string): string {
  const value = param(ctx, name);
  if (value === undefined) throw new errors.InvalidRequest(`missing required parameter '${name}'`);
  return value;
}

/** RFC 8693 §2.1: one target per issued token, named by resource and/or audience. */
function target(ctx: KoaContextWithOIDC): string {
  const resource = param(ctx, 'resource');
  const audience = param(ctx, 'audience');
  if (resource && audience && resource !== audience) {
    throw new errors.InvalidTarget('resource and audience name different targets; a token has one');
  }
  const chosen = resource ?? audience;
  if (!chosen) throw new errors.InvalidTarget('name the target service with resource or audience');
  return chosen;
}

/**
 * Downscoping (RFC 8693 §2.1 scope): never more than the subject token carried (when it
 * carries scopes at all) and the target resource offers. No scope asked: all of those.
 */
function grantedScopes(requested: string | undefined, subject: TokenFacts, offered: string[]): string[] {
  const ceiling = offered.filter((s) => subject.scopes === undefined || subject.scopes.includes(s));
  if (requested === undefined) return ceiling;
  const asked = [...new Set(requested.split(' ').filter(Boolean))];
  const refused = asked.filter((s) => !ceiling.includes(s));
  if (refused.length) throw new errors.InvalidScope(`scope exceeds what the subject token and the target allow: ${refused.join(' ')}`, refused.join(' '));
  return asked;
}

function describeError(err: unknown): string {
  return typeof err === 'object' && err !== null && typeof (err as { error?: unknown }).error === 'string'
    ? String((err as { error: string }).error)
    : 'server_error';
}

/**
 * The token exchange grant of one tenant: verifies the subject (and actor) token, applies
 * the tenant's exchange rules and the policy hook, downscopes, and issues an audience-bound
 * access token (JWT or opaque per the target) whose `act` claim names the chain of actors.
 * No refresh token is ever issued for an exchange.
 */
export function registerTokenExchange(provider: Provider, deps: TokenExchangeDeps): void {
  const { settings } = deps;
  const exchange = settings.tokenExchange;

  async function handler(ctx: KoaContextWithOIDC): Promise<void> {
    const client = ctx.oidc.client;
    if (!client) throw new errors.InvalidClient('client authentication is required');
    // An ID-JAG is a grant for another AS, not an access token here: its own rules apply.
    if (deps.issueIdJag && param(ctx, 'requested_token_type') === ID_JAG_TOKEN_TYPE) return deps.issueIdJag(ctx);
    const actorId = client.clientId;
    const context = { provider, issuer: deps.issuer, jwks: deps.jwks, settings: exchange };
    const event: Record<string, unknown> = { type: 'token_exchange', tenant: deps.tenantId, client: actorId };
    try {
      const requestedType = param(ctx, 'requested_token_type');
      if (requestedType !== undefined && requestedType !== TOKEN_TYPES.accessToken) {
        throw new errors.InvalidRequest(`requested_token_type ${requestedType} is not supported`);
      }
      const audience = target(ctx);
      event.audience = audience;
      const subject = await resolveToken(context, required(ctx, 'subject_token'), required(ctx, 'subject_token_type'));
      event.subject = subject.sub;

      // The actor is the authenticated client; an actor_token must be that client's own.
      const actorToken = param(ctx, 'actor_token');
      if (actorToken !== undefined) {
        const actor = await resolveToken(context, actorToken, required(ctx, 'actor_token_type'));
        if (actor.sub !== actorId && actor.clientId !== actorId) {
          throw exchangeRefused('actor_token does not identify the requesting client');
        }
      } else if (param(ctx, 'actor_token_type') !== undefined) {
        throw new errors.InvalidRequest('actor_token_type given without actor_token');
      }

      if (!mayAct(subject.mayAct, actorId)) throw exchangeRefused('the subject token does not allow this actor (may_act)');
      const rule = exchange.rules.find((r) => r.client === actorId && (r.audiences.includes('*') || r.audiences.includes(audience)));
      if (!rule) throw new errors.UnauthorizedClient(`client ${actorId} may not exchange tokens for ${audience}`);

      const act: ActClaim | undefined = rule.impersonation ? undefined : delegationChain(actorId, subject);
      if (chainDepth(act) > exchange.maxChainDepth) {
        throw exchangeRefused(`the delegation chain would exceed ${exchange.maxChainDepth} actors`);
      }
      event.act = act;
      const decision = await deps.policy.tokenExchange({
        tenant: deps.tenantId, clientId: actorId, subject: subject.sub, audience, act, depth: chainDepth(act),
      });
      if (!decision.allow) throw new errors.UnauthorizedClient(decision.reason);

      const resourceServer = await resourceServerFor({ tenantId: deps.tenantId, settings, policy: deps.policy }, actorId, audience);
      const scopes = grantedScopes(param(ctx, 'scope'), subject, (resourceServer.scope ?? '').split(' ').filter(Boolean));
      event.scopes = scopes;

      // Each exchange records its own Grant (subject, acting client, what was granted): the
      // token is valid only while that grant is, and revoking it revokes the token.
      const grant = new provider.Grant({ accountId: subject.sub, clientId: actorId });
      grant.addResourceScope(audience, scopes.join(' '));
      const grantId = await grant.save();
      const token = new provider.AccessToken({
        accountId: subject.sub,
        client,
        grantId,
        scope: scopes.join(' ') || undefined,
        gty: TOKEN_EXCHANGE_GRANT,
        ...(act ? { extra: { act } } : {}),
      });
      token.resourceServer = new provider.ResourceServer(audience, resourceServer);
      ctx.oidc.entity('AccessToken', token);
      const value = await token.save();

      ctx.body = {
        access_token: value,
        issued_token_type: TOKEN_TYPES.accessToken,
        token_type: 'Bearer',
        expires_in: token.expiration,
        ...(token.scope ? { scope: token.scope } : {}),
      };
      await deps.audit.record({ ...event, outcome: 'success' } as Parameters<AuditSink['record']>[0]);
    } catch (err) {
      await deps.audit.record({ ...event, outcome: 'failure', error: describeError(err) } as Parameters<AuditSink['record']>[0]);
      throw err;
    }
  }

  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, handler, PARAMETERS);
}
