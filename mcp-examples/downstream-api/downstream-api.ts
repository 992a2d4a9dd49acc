import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  createJwtVerifier,
  createNodeBearerAuth,
  createNodeProtectedResourceMetadataHandler,
  delegationChain,
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
} from 'castellan/resource-server';
import { closeServer, listen, pathOf, sendJson, type RunningHttpServer } from '../shared/http.ts';

/*
 * A plain HTTP API behind the gateway (not an MCP server). It accepts only JWTs whose audience
 * is itself, so the user's token for the gateway is refused here: the gateway must trade it
 * at Castellan (RFC 8693) for one of ours. GET <resource>/whoami answers who the token speaks
 * for and who acts on their behalf (the `act` chain, current actor first).
 */

/** What a token needs here; the demo tenant's downstream resource offers notes:read. */
export const DOWNSTREAM_SCOPES = ['notes:read'] as const;

export interface DownstreamApiOptions {
  port: number;
  issuer: string;
  /** This API's canonical URI; default http://localhost:<port>/api. */
  resource?: string;
  host?: string;
  onError?: (error: unknown) => void;
}

/** What GET /whoami answers. */
export interface WhoAmI {
  /** The audience the token was checked for: this API. */
  audience: string;
  /** The user the token speaks for. */
  subject: string | undefined;
  /** The client the token was issued to (the gateway, after token exchange). */
  clientId: string;
  scopes: string[];
  /** The raw `act` claim. */
  act: unknown;
  /** Actors, current first: [gateway, agent] for a gateway acting for an agent's user. */
  delegationChain: string[];
}

export async function startDownstreamApi(options: DownstreamApiOptions): Promise<RunningHttpServer> {
  const resource = options.resource ?? `http://localhost:${options.port}/api`;
  const base = new URL(resource).pathname.replace(/\/$/, '');
  const auth = createNodeBearerAuth({
    verifier: createJwtVerifier({ issuer: options.issuer, audience: resource }),
    resourceMetadataUrl: protectedResourceMetadataUrl(resource),
    requiredScopes: DOWNSTREAM_SCOPES,
    ...(options.onError ? { onError: options.onError } : {}),
  });
  const metadata = createNodeProtectedResourceMetadataHandler(protectedResourceMetadata({
    resource, issuer: options.issuer, scopesSupported: DOWNSTREAM_SCOPES, resourceName: 'Castellan example: downstream API',
  }));

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (metadata(req, res)) return;
    if (pathOf(req) !== `${base}/whoami`) {
      sendJson(res, 404, { error: 'not_found' });
      return;
    }
    const info = await auth.authenticate(req, res);
    if (!info) return;
    if (req.method !== 'GET') {
      sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET' });
      return;
    }
    const body: WhoAmI = {
      audience: resource,
      subject: typeof info.extra?.sub === 'string' ? info.extra.sub : undefined,
      clientId: info.clientId,
      scopes: info.scopes,
      act: info.extra?.act,
      delegationChain: delegationChain(info).map((actor) => actor.sub),
    };
    sendJson(res, 200, body);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      (options.onError ?? console.error)(error);
      sendJson(res, 500, { error: 'server_error' });
    });
  });
  const port = await listen(server, options.port, options.host);
  return { url: resource, port, close: () => closeServer(server) };
}
