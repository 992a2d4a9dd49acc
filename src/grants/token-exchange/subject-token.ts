import { decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { localKeySet } from '../../keys/local-key-set.ts';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { TokenExchangeSettings } from '../../tenants/tenant-settings.ts';
import { parseAct, type ActClaim } from './delegation.ts';

export const TOKEN_TYPES = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
} as const;

/** What an exchange needs to know of a presented token, whatever its kind. */
export interface TokenFacts {
  /** The principal: a user's subject, or a client id for a client's own token. */
  sub: string;
  /** The client the token was issued to, where known. */
  clientId: string | undefined;
  /** Scopes the token carries; undefined for identity assertions (id_token, external jwt). */
  scopes: string[] | undefined;
  act: ActClaim | undefined;
  mayAct: unknown;
}

export interface SubjectTokenContext {
  provider: Provider;
  issuer: string;
  /** The tenant's own public signing keys. */
  jwks: JSONWebKeySet;
  settings: TokenExchangeSettings;
}

const SIGNING_ALGORITHMS = ['RS256', 'ES256', 'EdDSA', 'PS256'];
const isJwt = (token: string) => token.split('.').length === 3;

/**
 * invalid_grant with its reason as the description: oidc-provider's InvalidGrant keeps
 * the reason internal (right for codes), but an exchanging service needs to know why.
 */
export function exchangeRefused(description: string): InstanceType<typeof errors.InvalidGrant> {
  return Object.assign(new errors.InvalidGrant(description), { error_description: description });
}

function invalidGrant(description: string): never {
  throw exchangeRefused(description);
}

function scopesOf(value: unknown): string[] {
  return typeof value === 'string' && value ? value.split(' ') : [];
}

function factsFromClaims(payload: JWTPayload, scopes: string[] | undefined): TokenFacts {
  if (typeof payload.sub !== 'string' || !payload.sub) invalidGrant('token has no subject');
  let act: ActClaim | undefined;
  try {
    act = parseAct(payload.act);
  } catch {
    invalidGrant('token carries a malformed act claim');
  }
  return {
    sub: payload.sub,
    clientId: typeof payload.client_id === 'string' ? payload.client_id : undefined,
    scopes,
    act,
    mayAct: payload.may_act,
  };
}

async function verifyOwnJwt(context: SubjectTokenContext, token: string, typ: string | undefined): Promise<JWTPayload> {
  try {
    const { payload } = await jwtVerify(token, localKeySet(context.jwks), {
      issuer: context.issuer,
      algorithms: SIGNING_ALGORITHMS,
      ...(typ ? { typ } : {}),
    });
    return payload;
  } catch {
    return invalidGrant('token is invalid, expired, or not issued by this tenant');
  }
}

/** An access token of this tenant: a JWT we signed, or an opaque one we still hold. */
async function accessTokenFacts(context: SubjectTokenContext, token: string): Promise<TokenFacts> {
  if (isJwt(token)) {
    const payload = await verifyOwnJwt(context, token, 'at+jwt');
    return factsFromClaims(payload, scopesOf(payload.scope));
  }
  const { provider } = context;
  const found = (await provider.AccessToken.find(token)) ?? (await provider.ClientCredentials.find(token));
  if (!found?.isValid) invalidGrant('token is invalid, expired or revoked');
  if ('grantId' in found && typeof found.grantId === 'string') {
    const grant = await provider.Grant.find(found.grantId);
    if (!grant || grant.isExpired) invalidGrant('the grant behind this token is gone');
  }
  const accountId = 'accountId' in found && typeof found.accountId === 'string' ? found.accountId : undefined;
  const extra = (found.extra ?? {}) as Record<string, unknown>;
  return factsFromClaims(
    { sub: accountId ?? found.clientId, client_id: found.clientId, act: extra.act, may_act: extra.may_act },
    scopesOf(found.scope),
  );
}

const PARTNER_CLOCK_TOLERANCE_SECONDS = 60;

/** A JWT from an issuer the tenant trusts (RFC 8693 token type jwt), checked against its keys. */
async function externalJwtFacts(context: SubjectTokenContext, token: string): Promise<TokenFacts> {
  if (!isJwt(token)) invalidGrant('subject_token is not a JWT');
  try {
    decodeProtectedHeader(token);
  } catch {
    invalidGrant('subject_token is not a JWT');
  }
  for (const trusted of context.settings.trustedIssuers) {
    try {
      const { payload } = await jwtVerify(token, localKeySet(trusted.jwks as JSONWebKeySet), {
        issuer: trusted.issuer,
        audience: trusted.audience,
        algorithms: SIGNING_ALGORITHMS,
        // Another issuer's clock: the same leeway as client assertions (RFC 7519 §4.1.4).
        clockTolerance: PARTNER_CLOCK_TOLERANCE_SECONDS,
      });
      return factsFromClaims(payload, undefined);
    } catch {
      // not this issuer's; try the next one
    }
  }
  return invalidGrant('subject_token is not from an issuer this tenant trusts, or is invalid');
}

/**
 * Resolves and verifies a subject or actor token of the given RFC 8693 type. A token of
 * another tenant, an expired or revoked one, or a forged one: invalid_grant.
 */
export async function resolveToken(context: SubjectTokenContext, token: string, type: string): Promise<TokenFacts> {
  switch (type) {
    case TOKEN_TYPES.accessToken:
      return accessTokenFacts(context, token);
    case TOKEN_TYPES.idToken: {
      if (!isJwt(token)) invalidGrant('id_token is not a JWT');
      return factsFromClaims(await verifyOwnJwt(context, token, undefined), undefined);
    }
    case TOKEN_TYPES.jwt:
      return externalJwtFacts(context, token);
    default:
      throw new errors.InvalidRequest(`unsupported token type: ${type}`);
  }
}
