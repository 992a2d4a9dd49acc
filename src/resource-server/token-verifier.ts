import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { InvalidTokenError } from './errors.ts';

export type { AuthInfo };

/**
 * Verifies a bearer access token for one resource (the MCP SDK's OAuthTokenVerifier shape,
 * server/auth/provider.ts). Resolves with who the token speaks for; rejects with
 * InvalidTokenError (401) or VerifierUnavailableError (503). Scopes are checked afterwards,
 * per request or per tool, with requireScopes.
 */
export interface TokenVerifier {
  verifyAccessToken(token: string): Promise<AuthInfo>;
}

/** One link of an RFC 8693 §4.1 delegation chain: who acts, and who acted for them. */
export interface Actor {
  sub: string;
  iss?: string;
  client_id?: string;
  /** The prior actor, when this one was itself acting for someone. */
  act?: Actor;
  [claim: string]: unknown;
}

/**
 * What our verifiers put in AuthInfo.extra. `act` is present when the token was obtained by
 * token exchange on someone's behalf; the outermost actor is the current one.
 */
export interface AuthInfoExtra {
  [key: string]: unknown;
  /** How the token was checked. */
  tokenFormat: 'jwt' | 'introspection';
  /** The resource owner (user) or, for client credentials, the client. */
  sub: string | undefined;
  iss: string | undefined;
  act?: Actor;
  /** Every claim of the JWT or member of the introspection response. */
  claims: Record<string, unknown>;
}

/** Longest `act` chain we accept; a deeper one is refused as malformed, not walked. */
const MAX_ACT_DEPTH = 10;

/** Validates an `act` claim (RFC 8693 §4.1): objects with a string `sub`, nested at most MAX_ACT_DEPTH. */
export function parseActClaim(value: unknown): Actor | undefined {
  if (value === undefined) return undefined;
  let node: unknown = value;
  for (let depth = 0; node !== undefined; depth += 1) {
    if (depth >= MAX_ACT_DEPTH) throw new InvalidTokenError('ERR_TOKEN_CLAIMS', 'act chain is too deep');
    if (typeof node !== 'object' || node === null || Array.isArray(node)) {
      throw new InvalidTokenError('ERR_TOKEN_CLAIMS', 'act must be an object');
    }
    const record = node as Record<string, unknown>;
    if (typeof record.sub !== 'string' || record.sub === '') throw new InvalidTokenError('ERR_TOKEN_CLAIMS', 'act.sub must be a string');
    node = record.act;
  }
  return value as Actor;
}

/**
 * The delegation chain of a verified token, current actor first (RFC 8693 §4.1: the
 * outermost `act` is the current actor, nested ones are prior actors). Empty when nobody acts
 * on the subject's behalf.
 */
export function delegationChain(authInfo: AuthInfo): Actor[] {
  const chain: Actor[] = [];
  let actor = (authInfo.extra as Partial<AuthInfoExtra> | undefined)?.act;
  while (actor) {
    chain.push(actor);
    actor = actor.act;
  }
  return chain;
}
