import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { Context, Middleware } from 'koa';
import {
  authorizeBearerRequest,
  bearerErrorResponse,
  checkBearerAuthOptions,
  type BearerAuthOptions,
} from './bearer-auth.ts';
import { InsufficientScopeError } from './errors.ts';
import {
  protectedResourceMetadataResponder,
  type PlainResponse,
  type ProtectedResourceMetadata,
} from './protected-resource-metadata.ts';

/** What koaBearerAuth puts in ctx.state. */
export interface BearerAuthState {
  auth: AuthInfo;
}

function send(ctx: Context, response: PlainResponse): void {
  ctx.status = response.status;
  ctx.set(response.headers);
  if (response.body !== undefined) {
    ctx.body = response.body;
    // Setting a string body makes Koa guess text/plain; the content type is ours.
    const type = response.headers['content-type'];
    if (type) ctx.type = type;
  }
}

export interface KoaBearerAuthOptions extends BearerAuthOptions {
  /** Scopes this route needs, on top of requiredScopes (koaBearerAuth per router layer). */
  routeScopes?: readonly string[];
}

/**
 * Koa middleware: verifies the bearer token and sets ctx.state.auth, or answers 401/403/503
 * itself. An InsufficientScopeError thrown further down (requireScopes in a tool handler)
 * becomes the 403 step-up answer here, so handlers just throw.
 */
export function koaBearerAuth(options: KoaBearerAuthOptions): Middleware<BearerAuthState> {
  checkBearerAuthOptions(options);
  return async (ctx, next) => {
    const result = await authorizeBearerRequest(options, {
      authorization: ctx.req.headersDistinct.authorization,
      query: ctx.querystring,
      ...(options.routeScopes ? { requiredScopes: options.routeScopes } : {}),
    });
    if (!result.ok) {
      send(ctx, result.response);
      return;
    }
    ctx.state.auth = result.authInfo;
    try {
      await next();
    } catch (error) {
      if (!(error instanceof InsufficientScopeError)) throw error;
      send(ctx, bearerErrorResponse(options, error, options.routeScopes));
    }
  };
}

/** Koa middleware serving the RFC 9728 document at its well-known paths; other requests pass through. */
export function koaProtectedResourceMetadata(metadata: ProtectedResourceMetadata): Middleware {
  const respond = protectedResourceMetadataResponder(metadata);
  return async (ctx, next) => {
    const response = respond(ctx.method, ctx.path);
    if (!response) return next();
    send(ctx, response);
  };
}
