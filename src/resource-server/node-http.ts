import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import {
  authorizeBearerRequest,
  bearerErrorResponse,
  checkBearerAuthOptions,
  type BearerAuthOptions,
} from './bearer-auth.ts';
import {
  protectedResourceMetadataResponder,
  type PlainResponse,
  type ProtectedResourceMetadata,
} from './protected-resource-metadata.ts';

/** Writes a response unless one was already started (then it can only be cut short). */
export function writePlainResponse(res: ServerResponse, response: PlainResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(response.status, response.headers);
  res.end(response.body);
}

function splitUrl(url: string | undefined): { pathname: string; query: string } {
  const raw = url ?? '/';
  const mark = raw.indexOf('?');
  return mark === -1 ? { pathname: raw, query: '' } : { pathname: raw.slice(0, mark), query: raw.slice(mark + 1) };
}

export interface NodeBearerAuth {
  /**
   * The request's verified AuthInfo, or undefined after writing the 401/403/503 answer (the
   * caller then just returns). `requiredScopes` adds to the options' scopes for this request.
   */
  authenticate(req: IncomingMessage, res: ServerResponse, options?: { requiredScopes?: readonly string[] }): Promise<AuthInfo | undefined>;
  /**
   * Answers for an error thrown later, typically requireScopes' InsufficientScopeError from a
   * tool's handler (403 with the step-up challenge). Any other error gets the same treatment as
   * in authenticate.
   */
  reject(res: ServerResponse, error: unknown): void;
}

/**
 * Bearer authentication for a plain node:http server:
 *
 *     const auth = createNodeBearerAuth({ verifier, resourceMetadataUrl });
 *     const info = await auth.authenticate(req, res);
 *     if (!info) return;
 *     await transport.handleRequest(Object.assign(req, { auth: info }), res, body);
 */
export function createNodeBearerAuth(options: BearerAuthOptions): NodeBearerAuth {
  checkBearerAuthOptions(options);
  return {
    async authenticate(req, res, perRequest) {
      const result = await authorizeBearerRequest(options, {
        // headersDistinct keeps every Authorization line (req.headers would keep the first only).
        authorization: req.headersDistinct.authorization,
        query: splitUrl(req.url).query,
        ...(perRequest?.requiredScopes ? { requiredScopes: perRequest.requiredScopes } : {}),
      });
      if (result.ok) return result.authInfo;
      writePlainResponse(res, result.response);
      return undefined;
    },
    reject(res, error) {
      writePlainResponse(res, bearerErrorResponse(options, error));
    },
  };
}

/**
 * Serves the RFC 9728 document at its well-known paths (protectedResourceMetadataPaths).
 * Returns true when it answered the request, false to let the caller route it elsewhere.
 */
export function createNodeProtectedResourceMetadataHandler(
  metadata: ProtectedResourceMetadata,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const respond = protectedResourceMetadataResponder(metadata);
  return (req, res) => {
    const response = respond(req.method ?? 'GET', splitUrl(req.url).pathname);
    if (!response) return false;
    writePlainResponse(res, response);
    return true;
  };
}
