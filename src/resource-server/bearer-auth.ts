import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import {
  InsufficientScopeError,
  InvalidRequestError,
  InvalidTokenError,
  VerifierUnavailableError,
} from './errors.ts';
import type { PlainResponse } from './protected-resource-metadata.ts';
import { assertScopeNames, requireScopes } from './scopes.ts';
import type { TokenVerifier } from './token-verifier.ts';
import { insufficientScopeChallenge, unauthorizedChallenge } from './www-authenticate.ts';

/*
 * The framework-neutral core of the adapters: read the bearer token from a request, verify
 * it, check scopes, and turn any failure into the response RFC 6750 / RFC 9728 / MCP expect.
 * node-http.ts and koa.ts only move these values in and out of their request objects.
 */

/** RFC 6750 §2.1 b64token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
/** Far above any token Castellan issues; stops junk before it reaches a verifier. */
const MAX_TOKEN_LENGTH = 8192;

/**
 * The bearer token of a request, or undefined when it presents none (no Authorization header,
 * or another scheme such as Basic: RFC 6750 §3.1, answered with a bare challenge). Throws
 * InvalidRequestError for a Bearer header that is empty, holds several tokens or characters
 * outside b64token, for several Authorization headers, and for a token in the query string.
 */
export function readBearerToken(authorization: string | readonly string[] | undefined, query = ''): string | undefined {
  if (new URLSearchParams(query).has('access_token')) {
    throw new InvalidRequestError('ERR_TOKEN_IN_QUERY', 'access tokens are accepted in the Authorization header only');
  }
  const values = typeof authorization === 'string' ? [authorization] : authorization ?? [];
  if (values.length === 0) return undefined;
  if (values.length > 1) throw new InvalidRequestError('ERR_AUTHORIZATION_MALFORMED', 'more than one Authorization header');
  const value = (values[0] ?? '').trim();
  if (value === '') throw new InvalidRequestError('ERR_AUTHORIZATION_MALFORMED', 'empty Authorization header');
  const space = value.search(/[ \t]/);
  const scheme = space === -1 ? value : value.slice(0, space);
  if (scheme.toLowerCase() !== 'bearer') return undefined;
  const credentials = space === -1 ? '' : value.slice(space).trim();
  if (credentials === '') throw new InvalidRequestError('ERR_AUTHORIZATION_MALFORMED', 'Bearer without a token');
  if (/[ \t]/.test(credentials)) throw new InvalidRequestError('ERR_AUTHORIZATION_MALFORMED', 'more than one token');
  if (credentials.length > MAX_TOKEN_LENGTH) throw new InvalidRequestError('ERR_AUTHORIZATION_MALFORMED', 'token too long');
  if (!B64TOKEN.test(credentials)) throw new InvalidRequestError('ERR_AUTHORIZATION_MALFORMED', 'token has characters outside b64token (RFC 6750 §2.1)');
  return credentials;
}

export interface BearerAuthOptions {
  verifier: TokenVerifier;
  /** RFC 9728 metadata URL for `resource_metadata` (protectedResourceMetadataUrl(resource)). */
  resourceMetadataUrl: string;
  /** Scopes every request needs; advertised in the 401 challenge's `scope`. */
  requiredScopes?: readonly string[];
  /**
   * Whether AuthInfo.token carries the raw token to the code behind the adapter. Default false:
   * it is '' there, so tool code cannot forward it downstream (MCP forbids token passthrough)
   * nor log it by accident. Set true only for a gateway that trades it at the AS (RFC 8693
   * subject_token); even then it is never sent to another resource.
   */
  exposeToken?: boolean;
  /**
   * The `scope` of a 403 challenge: 'required-and-granted' (default) asks for the token's
   * scopes plus the missing ones, because MCP 2025-11-25 clients (the TypeScript SDK 1.32
   * among them) request exactly the challenged scopes and would otherwise lose what they
   * had; 'required' names only what the operation needs (RFC 6750 §3.1; MCP 2026-07-28
   * clients add it to what they hold themselves).
   */
  stepUpScopes?: 'required-and-granted' | 'required';
  /** Told about failures that are neither the client's nor an outage (answered 500). */
  onError?: (error: unknown) => void;
}

export interface BearerRequest {
  /** The Authorization header value(s) as received; several values are refused. */
  authorization: string | readonly string[] | undefined;
  /** The raw query string, to refuse tokens there. */
  query?: string;
  /** Scopes this request needs on top of the options' requiredScopes. */
  requiredScopes?: readonly string[];
}

export type BearerAuthResult = { ok: true; authInfo: AuthInfo } | { ok: false; response: PlainResponse };

const NO_STORE = { 'cache-control': 'no-store' };

function json(status: number, headers: Record<string, string>, body: Record<string, string>): PlainResponse {
  return { status, headers: { ...NO_STORE, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}

function union(...lists: ReadonlyArray<readonly string[]>): string[] {
  return [...new Set(lists.flat())];
}

/** Validated once per adapter: scope names and the metadata URL are the server's own configuration. */
export function checkBearerAuthOptions(options: BearerAuthOptions): void {
  if (typeof options.verifier?.verifyAccessToken !== 'function') throw new TypeError('bearer auth: verifier must implement verifyAccessToken');
  try {
    new URL(options.resourceMetadataUrl);
  } catch {
    throw new TypeError(`bearer auth: resourceMetadataUrl ${JSON.stringify(options.resourceMetadataUrl)} is not an absolute URL`);
  }
  assertScopeNames(options.requiredScopes ?? [], 'requiredScopes');
}

/** 401 for a request without a bearer token: a bare challenge, no error code (RFC 6750 §3.1). */
export function missingTokenResponse(options: BearerAuthOptions, requiredScopes: readonly string[] = []): PlainResponse {
  const scope = union(options.requiredScopes ?? [], requiredScopes);
  return json(401, { 'www-authenticate': unauthorizedChallenge({ resourceMetadata: options.resourceMetadataUrl, scope }) }, {
    error_description: 'a bearer token is required',
  });
}

/**
 * The response for a failed request: 401 invalid_request or invalid_token, 403
 * insufficient_scope, 503 when the token could not be checked, and 500 (reported to onError,
 * never detailed to the client) for anything else.
 */
export function bearerErrorResponse(options: BearerAuthOptions, error: unknown, requiredScopes: readonly string[] = []): PlainResponse {
  const scope = union(options.requiredScopes ?? [], requiredScopes);
  const resourceMetadata = options.resourceMetadataUrl;
  if (error instanceof InvalidRequestError || error instanceof InvalidTokenError) {
    const challenge = unauthorizedChallenge({ resourceMetadata, scope, error: error.errorCode as 'invalid_request' | 'invalid_token', errorDescription: error.message });
    return json(401, { 'www-authenticate': challenge }, { error: error.errorCode, error_description: error.message });
  }
  if (error instanceof InsufficientScopeError) {
    const wanted = union(error.requiredScopes, scope);
    const stepUp = options.stepUpScopes === 'required' ? wanted : union(error.grantedScopes, wanted);
    const challenge = insufficientScopeChallenge({ resourceMetadata, scope: stepUp, errorDescription: error.message });
    return json(403, { 'www-authenticate': challenge }, { error: 'insufficient_scope', error_description: error.message });
  }
  if (error instanceof VerifierUnavailableError) {
    options.onError?.(error);
    return json(503, { 'retry-after': '5' }, { error: 'temporarily_unavailable', error_description: 'the access token could not be checked; try again' });
  }
  options.onError?.(error);
  return json(500, {}, { error: 'server_error', error_description: 'internal error' });
}

/** Reads, verifies and scope-checks a request's bearer token. Never throws. */
export async function authorizeBearerRequest(options: BearerAuthOptions, request: BearerRequest): Promise<BearerAuthResult> {
  const requiredScopes = request.requiredScopes ?? [];
  try {
    const token = readBearerToken(request.authorization, request.query);
    if (token === undefined) return { ok: false, response: missingTokenResponse(options, requiredScopes) };
    const authInfo = await options.verifier.verifyAccessToken(token);
    requireScopes(authInfo, union(options.requiredScopes ?? [], requiredScopes));
    return { ok: true, authInfo: options.exposeToken ? authInfo : { ...authInfo, token: '' } };
  } catch (error) {
    return { ok: false, response: bearerErrorResponse(options, error, requiredScopes) };
  }
}
