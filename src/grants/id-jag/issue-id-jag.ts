import { randomBytes } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, SignJWT, type JSONWebKeySet, type JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import { errors, type JWKS, type KoaContextWithOIDC } from 'oidc-provider';
import type { AuditEvent, AuditSink } from '../../observability/audit.ts';
import type { PolicyHooks } from '../../policy/hooks.ts';
import type { TenantSettings } from '../../tenants/tenant-settings.ts';
import { exchangeRefused, resolveToken, TOKEN_TYPES, type TokenFacts } from '../token-exchange/subject-token.ts';
import { errorCode, ID_JAG_TOKEN_TYPE, ID_JAG_TYP, requiredParam, scopesWithin, singleParam } from './id-jag.ts';
import { signingKeys } from './signing-key.ts';

export interface IdJagIssuerDeps {
  tenantId: string;
  issuer: string;
  settings: TenantSettings;
  policy: PolicyHooks;
  /** Public signing keys: this tenant's own id_tokens and access tokens verify against them. */
  jwks: JSONWebKeySet;
  /** Private signing keys as given to oidc-provider: the active one of the target's alg signs. */
  signingJwks: JWKS;
  audit: AuditSink;
}

/** Claims of the subject's id_token carried over into the ID-JAG (draft §3, OPTIONAL). */
const AUTHENTICATION_CLAIMS = ['auth_time', 'acr', 'amr'] as const;
const OWN_JWT_TYPES = new Set(['at+jwt', 'application/at+jwt', ID_JAG_TYP, `application/${ID_JAG_TYP}`]);

/**
 * draft §4.3.1: the subject is an identity assertion of a user, issued to the requesting
 * client. An id_token's aud must name the client; an access token must have been issued to
 * it, for a user (not a client's own token), and not be delegated already (an ID-JAG has no
 * act claim to carry a chain in).
 */
async function verifiedSubject(deps: IdJagIssuerDeps, provider: Provider, clientId: string, token: string, type: string): Promise<{ facts: TokenFacts; authentication: JWTPayload }> {
  if (type !== TOKEN_TYPES.idToken && type !== TOKEN_TYPES.accessToken) {
    throw new errors.InvalidRequest('an ID-JAG is issued for an id_token or an access_token of this tenant');
  }
  const context = { provider, issuer: deps.issuer, jwks: deps.jwks, settings: deps.settings.tokenExchange };
  const facts = await resolveToken(context, token, type);
  if (type === TOKEN_TYPES.idToken) {
    // resolveToken verified the signature and issuer; now make sure it is an id_token at all.
    const typ = decodeProtectedHeader(token).typ;
    const claims = decodeJwt(token);
    if (typeof typ === 'string' && OWN_JWT_TYPES.has(typ.toLowerCase())) throw exchangeRefused('subject_token is not an id_token');
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.includes(clientId)) throw exchangeRefused('the id_token was not issued to the requesting client (aud)');
    return { facts, authentication: claims };
  }
  if (facts.clientId !== clientId) throw exchangeRefused('the access token was not issued to the requesting client');
  if (facts.sub === facts.clientId) throw exchangeRefused('the access token does not speak for a user');
  if (facts.act) throw exchangeRefused('the access token is delegated already (act); present the user\'s own token');
  return { facts, authentication: {} };
}

/**
 * The IdP side of draft-ietf-oauth-identity-assertion-authz-grant: a token exchange with
 * requested_token_type id-jag, answered with a short-lived JWT for another authorization
 * server (`audience`, its issuer), naming the client there, the resource and scopes. Who may
 * ask: the tenant's tokenExchange rules (audience = the target issuer) and an idJag.issue
 * entry, which also says the client's id at the target. token_type N_A: not an access token.
 */
export function createIdJagIssuer(provider: Provider, deps: IdJagIssuerDeps): (ctx: KoaContextWithOIDC) => Promise<void> {
  const { settings } = deps;
  const keyFor = signingKeys(deps.signingJwks);

  return async (ctx) => {
    const client = ctx.oidc.client;
    if (!client) throw new errors.InvalidClient('client authentication is required');
    const clientId = client.clientId;
    const event: AuditEvent = { type: 'id_jag_issue', tenant: deps.tenantId, client: clientId, outcome: 'failure' };
    try {
      // draft §7.1: confidential clients only; public ones use the code flow at the target.
      if (client.clientAuthMethod === 'none') throw new errors.UnauthorizedClient('ID-JAGs are issued to confidential clients only');
      if (singleParam(ctx, 'actor_token') !== undefined || singleParam(ctx, 'actor_token_type') !== undefined) {
        throw new errors.InvalidRequest('actor_token is not used when requesting an ID-JAG');
      }
      const audience = singleParam(ctx, 'audience');
      if (audience === undefined) throw new errors.InvalidTarget('name the target authorization server\'s issuer in audience');
      event.audience = audience;
      const resource = singleParam(ctx, 'resource');
      if (resource !== undefined) event.resource = resource;

      if (!settings.idJag.issue.some((t) => t.audience === audience)) {
        throw new errors.InvalidTarget(`this tenant issues no ID-JAGs for ${audience}`);
      }
      const target = settings.idJag.issue.find((t) => t.client === clientId && t.audience === audience);
      const rule = settings.tokenExchange.rules.find((r) => r.client === clientId && (r.audiences.includes('*') || r.audiences.includes(audience)));
      if (!target || !rule) throw new errors.UnauthorizedClient(`client ${clientId} may not request ID-JAGs for ${audience}`);
      if (target.resources && (resource === undefined || !target.resources.includes(resource))) {
        throw new errors.InvalidTarget(resource === undefined
          ? `name one of the resources at ${audience} this client may reach`
          : `client ${clientId} may not request ID-JAGs for ${resource}`);
      }
      const scopes = scopesWithin(singleParam(ctx, 'scope'), target.scopes, `what this client may be granted at ${audience}`);
      event.scopes = scopes;

      const subjectToken = requiredParam(ctx, 'subject_token');
      const { facts, authentication } = await verifiedSubject(deps, provider, clientId, subjectToken, requiredParam(ctx, 'subject_token_type'));
      event.subject = facts.sub;

      const decision = await deps.policy.tokenExchange({ tenant: deps.tenantId, clientId, subject: facts.sub, audience, act: undefined, depth: 0 });
      if (!decision.allow) throw new errors.UnauthorizedClient(decision.reason);

      const targetClientId = target.clientId ?? clientId;
      const jti = randomBytes(24).toString('base64url');
      const key = await keyFor(target.signingAlgorithm);
      const now = Math.floor(Date.now() / 1000);
      const carried = Object.fromEntries(AUTHENTICATION_CLAIMS.filter((c) => authentication[c] !== undefined).map((c) => [c, authentication[c]]));
      const idJag = await new SignJWT({
        ...carried,
        client_id: targetClientId,
        ...(resource !== undefined ? { resource } : {}),
        ...(scopes.length ? { scope: scopes.join(' ') } : {}),
      })
        .setProtectedHeader({ alg: key.alg, typ: ID_JAG_TYP, ...(key.kid ? { kid: key.kid } : {}) })
        .setIssuer(deps.issuer)
        .setSubject(facts.sub)
        .setAudience(audience)
        .setJti(jti)
        .setIssuedAt(now)
        .setExpirationTime(now + target.ttl)
        .sign(key.key);

      ctx.body = {
        access_token: idJag,
        issued_token_type: ID_JAG_TOKEN_TYPE,
        token_type: 'N_A',
        expires_in: target.ttl,
        ...(scopes.length ? { scope: scopes.join(' ') } : {}),
      };
      // The jti (not the assertion) lets the target's audit trail be joined with this one.
      await deps.audit.record({ ...event, targetClientId, jti, outcome: 'success' });
    } catch (err) {
      await deps.audit.record({ ...event, outcome: 'failure', error: errorCode(err) });
      throw err;
    }
  };
}
