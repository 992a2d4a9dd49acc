import { createJwtVerifier } from 'castellan/resource-server';
import { callerOf, jsonResult, scopedTool, startMcpHttpServer, type RunningHttpServer } from '../shared/mcp-http-server.ts';
import { createTokenExchangeClient, TokenExchangeError } from './token-exchange.ts';

/*
 * The gateway MCP server: its tool calls a downstream API on the user's behalf. The user's
 * token (audience: this gateway) is never sent downstream; each call trades it at Castellan
 * (RFC 8693) for a token whose audience is the downstream API, carrying
 * act = { sub: <gateway>, act: { sub: <agent> } }.
 */

/**
 * The scope the user grants the gateway, and the one it asks for downstream: Castellan never
 * gives an exchanged token more than the subject token carried (README, token exchange), so
 * the gateway's token must hold what the downstream needs. The demo tenant uses notes:read
 * for both.
 */
export const GATEWAY_SCOPES = ['notes:read'] as const;

export interface GatewayOptions {
  port: number;
  issuer: string;
  /** This gateway's canonical URI; default http://localhost:<port>/mcp. */
  resource?: string;
  /** The gateway's confidential client at Castellan, allowed to exchange tokens for the downstream. */
  clientId: string;
  clientSecret: string;
  /** The downstream API's resource URI (its token audience); it answers GET <downstream>/whoami. */
  downstream: string;
  host?: string;
  fetch?: typeof fetch;
  onError?: (error: unknown) => void;
}

export async function startGateway(options: GatewayOptions): Promise<RunningHttpServer> {
  const resource = options.resource ?? `http://localhost:${options.port}/mcp`;
  const doFetch = options.fetch ?? fetch;
  const exchanger = createTokenExchangeClient({
    issuer: options.issuer, clientId: options.clientId, clientSecret: options.clientSecret, fetch: doFetch,
  });
  const failure = (text: string) => ({ isError: true, content: [{ type: 'text' as const, text }] });

  const tools = [
    scopedTool('downstream_whoami', GATEWAY_SCOPES, (server, name) => server.registerTool(name, {
      description: 'Asks the downstream API, on your behalf, whom it sees calling: you, through this gateway and your agent.',
    }, async (extra) => {
      let downstreamToken: string;
      try {
        const exchanged = await exchanger.exchange({
          subjectToken: callerOf(extra).token,
          resource: options.downstream,
          scope: GATEWAY_SCOPES.join(' '),
        });
        downstreamToken = exchanged.accessToken;
      } catch (error) {
        if (error instanceof TokenExchangeError) return failure(error.message);
        throw error;
      }
      const response = await doFetch(`${options.downstream.replace(/\/$/, '')}/whoami`, {
        headers: { authorization: `Bearer ${downstreamToken}`, accept: 'application/json' },
        redirect: 'manual',
        signal: AbortSignal.timeout(5000),
      });
      const body: unknown = await response.json().catch(() => undefined);
      if (!response.ok) return failure(`the downstream API answered ${response.status}`);
      return jsonResult({ downstream: body });
    })),
  ];

  return startMcpHttpServer({
    name: 'Castellan example: gateway',
    resource,
    issuer: options.issuer,
    port: options.port,
    ...(options.host ? { host: options.host } : {}),
    verifier: createJwtVerifier({ issuer: options.issuer, audience: resource }),
    scopesSupported: GATEWAY_SCOPES,
    requiredScopes: GATEWAY_SCOPES,
    tools,
    // The one server that sees the caller's raw token: only as the RFC 8693 subject_token.
    exposeToken: true,
    ...(options.onError ? { onError: options.onError } : {}),
  });
}
