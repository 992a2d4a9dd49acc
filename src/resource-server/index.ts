/*
 * Castellan's resource-server kit (`castellan/resource-server`): what an MCP server needs to
 * accept Castellan's tokens. A verifier interface with JWT (RFC 9068) and introspection
 * (RFC 7662) implementations, per-tool scope checks, RFC 9728 metadata, RFC 6750
 * challenges, and thin node:http and Koa adapters. README.md beside this file explains it.
 */
export type { AuthInfo, Actor, AuthInfoExtra, TokenVerifier } from './token-verifier.ts';
export { delegationChain } from './token-verifier.ts';
export {
  InsufficientScopeError,
  InvalidRequestError,
  InvalidTokenError,
  VerifierUnavailableError,
  isResourceServerError,
} from './errors.ts';
export type { InvalidRequestCode, InvalidTokenCode, ResourceServerError, ResourceServerErrorCode } from './errors.ts';
export { createJwtVerifier, JWT_ALGORITHMS } from './jwt-verifier.ts';
export type { JwtAlgorithm, JwtVerifierOptions } from './jwt-verifier.ts';
export { createIntrospectionVerifier, MAX_NEGATIVE_CACHE_SECONDS } from './introspection-verifier.ts';
export type { IntrospectionVerifierOptions } from './introspection-verifier.ts';
export { requireScopes } from './scopes.ts';
export {
  protectedResourceMetadata,
  protectedResourceMetadataPaths,
  protectedResourceMetadataResponder,
  protectedResourceMetadataUrl,
} from './protected-resource-metadata.ts';
export type { PlainResponse, ProtectedResourceMetadata, ProtectedResourceMetadataOptions } from './protected-resource-metadata.ts';
export { insufficientScopeChallenge, unauthorizedChallenge } from './www-authenticate.ts';
export type { InsufficientScopeChallengeOptions, UnauthorizedChallengeOptions } from './www-authenticate.ts';
export { authorizeBearerRequest, bearerErrorResponse, missingTokenResponse, readBearerToken } from './bearer-auth.ts';
export type { BearerAuthOptions, BearerAuthResult, BearerRequest } from './bearer-auth.ts';
export { createNodeBearerAuth, createNodeProtectedResourceMetadataHandler } from './node-http.ts';
export type { NodeBearerAuth } from './node-http.ts';
export { koaBearerAuth, koaProtectedResourceMetadata } from './koa.ts';
export type { BearerAuthState, KoaBearerAuthOptions } from './koa.ts';
