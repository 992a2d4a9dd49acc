import {
  InsufficientScopeError as SdkInsufficientScopeError,
  InvalidRequestError as SdkInvalidRequestError,
  InvalidTokenError as SdkInvalidTokenError,
  ServerError as SdkServerError,
} from '@modelcontextprotocol/sdk/server/auth/errors.js';

/*
 * The kit's errors extend the MCP SDK's OAuth errors, so a verifier of ours plugged into the
 * SDK's own requireBearerAuth (Express) is answered 401/403 as it should be. Each also carries
 * a stable `code` (like jose's ERR_JWT_EXPIRED) for callers, logs and tests, and the HTTP
 * status our adapters answer with.
 */

/** Why a presented token was refused. Stable: callers and tests may rely on these strings. */
export type InvalidTokenCode =
  /** Not a JWS / not a JWT / unparsable. */
  | 'ERR_TOKEN_MALFORMED'
  /** The JOSE header `typ` is not at+jwt (RFC 9068 §4): an id_token or another JWT. */
  | 'ERR_TOKEN_TYPE'
  /** The signing algorithm is not in the verifier's allow-list. */
  | 'ERR_TOKEN_ALGORITHM'
  | 'ERR_TOKEN_SIGNATURE'
  /** No key of the issuer's JWKS matches the token's kid, even after a bounded refetch. */
  | 'ERR_TOKEN_UNKNOWN_KEY'
  | 'ERR_TOKEN_ISSUER'
  /** The token was issued for another resource (RFC 8707 / RFC 9068 §4 `aud`). */
  | 'ERR_TOKEN_AUDIENCE'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_NOT_YET_VALID'
  /** A required claim is missing or has the wrong shape (client_id, sub, scope, act…). */
  | 'ERR_TOKEN_CLAIMS'
  /** Introspection (RFC 7662) says `active: false`: unknown, revoked or expired. */
  | 'ERR_TOKEN_INACTIVE'
  /** Not an access token usable as a bearer token (refresh token, DPoP or mTLS bound, …). */
  | 'ERR_TOKEN_UNSUPPORTED';

/** Why a request's credentials could not even be read (RFC 6750 §3.1 invalid_request). */
export type InvalidRequestCode =
  /** `Authorization: Bearer` with no token, several tokens, or characters outside b64token. */
  | 'ERR_AUTHORIZATION_MALFORMED'
  /** A token in the query string (RFC 6750 §2.3; forbidden by OAuth 2.1 and the MCP spec). */
  | 'ERR_TOKEN_IN_QUERY';

export type ResourceServerErrorCode = InvalidTokenCode | InvalidRequestCode | 'ERR_INSUFFICIENT_SCOPE' | 'ERR_VERIFIER_UNAVAILABLE';

/** Anything the kit throws on purpose has these; see `isResourceServerError`. */
export interface ResourceServerErrorFields {
  readonly code: ResourceServerErrorCode;
  /** The HTTP status the adapters answer with. */
  readonly status: number;
}

/** The token is missing its mark: invalid, expired, revoked, for someone else (401 invalid_token). */
export class InvalidTokenError extends SdkInvalidTokenError implements ResourceServerErrorFields {
  readonly code: InvalidTokenCode;
  readonly status = 401;
  constructor(code: InvalidTokenCode, message: string, options?: { cause?: unknown }) {
    super(message);
    this.code = code;
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

/**
 * The Authorization header (or query) is malformed. RFC 6750 §3.1 suggests 400 for
 * invalid_request; we answer 401 because MCP clients start authorization on 401 only, and a
 * client sending a broken header needs exactly that.
 */
export class InvalidRequestError extends SdkInvalidRequestError implements ResourceServerErrorFields {
  readonly code: InvalidRequestCode;
  readonly status = 401;
  constructor(code: InvalidRequestCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** The token is good but lacks scopes this request needs (RFC 6750 §3.1, 403). */
export class InsufficientScopeError extends SdkInsufficientScopeError implements ResourceServerErrorFields {
  readonly code = 'ERR_INSUFFICIENT_SCOPE';
  readonly status = 403;
  /** Every scope the request needs: what the client should ask for (step-up). */
  readonly requiredScopes: readonly string[];
  /** The required scopes the token lacks. */
  readonly missingScopes: readonly string[];
  /** What the token carries, so a challenge can ask for them again (see BearerAuthOptions.stepUpScopes). */
  readonly grantedScopes: readonly string[];
  constructor(requiredScopes: readonly string[], missingScopes: readonly string[], grantedScopes: readonly string[] = []) {
    super(`missing scope: ${missingScopes.join(' ')}`);
    this.requiredScopes = [...requiredScopes];
    this.missingScopes = [...missingScopes];
    this.grantedScopes = [...grantedScopes];
  }
}

/**
 * The token could not be checked at all: the JWKS or the introspection endpoint is down,
 * slow or refuses our credentials. Not the client's fault, so not a 401 (which would send a
 * client with a good token off to re-authorize): the adapters answer 503.
 */
export class VerifierUnavailableError extends SdkServerError implements ResourceServerErrorFields {
  readonly code = 'ERR_VERIFIER_UNAVAILABLE';
  readonly status = 503;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message);
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

export type ResourceServerError = InvalidTokenError | InvalidRequestError | InsufficientScopeError | VerifierUnavailableError;

export function isResourceServerError(error: unknown): error is ResourceServerError {
  return (
    error instanceof InvalidTokenError ||
    error instanceof InvalidRequestError ||
    error instanceof InsufficientScopeError ||
    error instanceof VerifierUnavailableError
  );
}
