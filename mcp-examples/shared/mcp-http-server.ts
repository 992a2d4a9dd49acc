import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import {
  createNodeBearerAuth,
  createNodeProtectedResourceMetadataHandler,
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  requireScopes,
  type AuthInfo,
  type TokenVerifier,
} from 'castellan/resource-server';
import { BodyTooLargeError, closeServer, listen, pathOf, readBody, sendJson, type RunningHttpServer } from './http.ts';

export type { RunningHttpServer };

/*
 * What the example MCP servers share: a node:http server that serves the RFC 9728 metadata,
 * checks the bearer token with Castellan's kit, checks each tool's scopes *before* the call
 * reaches the MCP SDK (so a missing scope is an HTTP 403 with the step-up challenge, which
 * MCP clients act on, not a tool error inside a 200), and hands the request to a stateless
 * Streamable HTTP transport.
 */

/** A tool and the scopes a token needs to call it; the HTTP layer enforces them. */
export interface ScopedTool {
  readonly name: string;
  readonly scopes: readonly string[];
  register(server: McpServer): void;
}

/**
 * Declares a tool with its scopes in one place, so the scope map the HTTP layer checks and the
 * tools the MCP server offers cannot drift apart. `register` calls server.registerTool(name, …)
 * (with the concrete input shape, which the SDK's types need); its handler gets the verified
 * caller with callerOf(extra).
 */
export function scopedTool(name: string, scopes: readonly string[], register: (server: McpServer, name: string) => void): ScopedTool {
  return { name, scopes, register: (server) => register(server, name) };
}

/**
 * The verified caller of a tool: who, with which scopes (`token` is '' unless the server
 * exposes it). Behind startMcpHttpServer there is always one; its absence is a wiring mistake.
 */
export function callerOf(extra: { authInfo?: AuthInfo }): AuthInfo {
  if (!extra.authInfo) throw new Error('tool called without an authenticated caller');
  return extra.authInfo;
}

/** A tool result holding one JSON document as text. */
export function jsonResult(value: unknown): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(value, null, 2) }] };
}

export interface McpHttpServerOptions {
  /** serverInfo.name of the MCP server, and the metadata's resource_name. */
  name: string;
  version?: string;
  /** The canonical resource URI (what tokens' `aud` must be); the server answers on its path. */
  resource: string;
  /** The Castellan tenant, advertised in `authorization_servers`. */
  issuer: string;
  port: number;
  /** Interface to listen on; loopback by default. */
  host?: string;
  verifier: TokenVerifier;
  scopesSupported: readonly string[];
  /** Scopes every request needs (also what the 401 challenge asks for). */
  requiredScopes: readonly string[];
  tools: readonly ScopedTool[];
  /** Hand the raw token to tools (a gateway's subject_token for RFC 8693); never forward it. */
  exposeToken?: boolean;
  onError?: (error: unknown) => void;
}

/**
 * INSECURE test mode, for the MCP conformance package's server scenarios only (they send no
 * token): with MCP_EXAMPLE_INSECURE_CONFORMANCE_MODE=1 every request is served as an anonymous
 * caller holding all the server's scopes. Refused unless the server listens on loopback, and
 * announced on stderr at start.
 */
export const INSECURE_CONFORMANCE_MODE_ENV = 'MCP_EXAMPLE_INSECURE_CONFORMANCE_MODE';
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

/** The hostname of a Host header or Origin URL, brackets kept for IPv6 ("[::1]"). */
function hostnameOf(value: string): string | undefined {
  try {
    return new URL(value.includes('://') ? value : `http://${value}`).hostname;
  } catch {
    return undefined;
  }
}

/**
 * In the insecure test mode only: the request comes from this machine by name too (Host and
 * Origin loopback), so a web page cannot reach the unauthenticated server by DNS rebinding.
 */
function loopbackByName(req: IncomingMessage): boolean {
  const names = ['localhost', '127.0.0.1', '[::1]'];
  const host = hostnameOf(req.headers.host ?? '');
  const origin = req.headers.origin;
  return host !== undefined && names.includes(host) && (origin === undefined || names.includes(hostnameOf(origin) ?? ''));
}

/** The anonymous caller of the insecure test mode, or undefined when the mode is off. */
function insecureConformanceCaller(options: McpHttpServerOptions): AuthInfo | undefined {
  if (process.env[INSECURE_CONFORMANCE_MODE_ENV] !== '1') return undefined;
  const host = options.host ?? '127.0.0.1';
  if (!LOOPBACK_HOSTS.has(host)) {
    throw new Error(`${INSECURE_CONFORMANCE_MODE_ENV}=1 serves unauthenticated calls: refused on ${host}, allowed on loopback only`);
  }
  console.error(`[${options.name}] WARNING: INSECURE CONFORMANCE TEST MODE (${INSECURE_CONFORMANCE_MODE_ENV}=1): NO AUTHENTICATION, every request is served as an anonymous caller with all scopes. Never use this outside tests.`);
  const scopes = [...new Set([...options.scopesSupported, ...options.requiredScopes])];
  return { token: '', clientId: 'insecure-conformance-mode', scopes, extra: { sub: 'insecure-conformance-mode' } };
}

/** Bodies of MCP requests are small; anything larger is refused before parsing. */
const MAX_BODY_BYTES = 1024 * 1024;

const jsonRpcError = (code: number, message: string) => ({ jsonrpc: '2.0', id: null, error: { code, message } });

/** The scopes the tools/call messages of a request need (a JSON-RPC batch may hold several). */
function scopesForCalls(body: unknown, toolScopes: ReadonlyMap<string, readonly string[]>): string[] {
  const messages = Array.isArray(body) ? body : [body];
  const scopes = new Set<string>();
  for (const message of messages) {
    if (typeof message !== 'object' || message === null) continue;
    const { method, params } = message as { method?: unknown; params?: { name?: unknown } };
    if (method !== 'tools/call' || typeof params?.name !== 'string') continue;
    for (const scope of toolScopes.get(params.name) ?? []) scopes.add(scope);
  }
  return [...scopes];
}

/** Starts the server; resolves once it listens. */
export async function startMcpHttpServer(options: McpHttpServerOptions): Promise<RunningHttpServer> {
  const onError = options.onError ?? ((error: unknown) => console.error(`[${options.name}]`, error));
  const path = new URL(options.resource).pathname;
  const anonymous = insecureConformanceCaller(options);
  const toolScopes = new Map(options.tools.map((tool) => [tool.name, tool.scopes]));
  const auth = createNodeBearerAuth({
    verifier: options.verifier,
    resourceMetadataUrl: protectedResourceMetadataUrl(options.resource),
    requiredScopes: options.requiredScopes,
    exposeToken: options.exposeToken ?? false,
    onError,
  });
  const metadata = createNodeProtectedResourceMetadataHandler(protectedResourceMetadata({
    resource: options.resource,
    issuer: options.issuer,
    scopesSupported: options.scopesSupported,
    resourceName: options.name,
  }));

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (metadata(req, res)) return;
    if (pathOf(req) !== path) {
      sendJson(res, 404, { error: 'not_found' });
      return;
    }
    if (anonymous && !loopbackByName(req)) {
      sendJson(res, 403, jsonRpcError(-32000, 'insecure conformance mode: loopback Host and Origin only'));
      return;
    }
    const authInfo = anonymous ?? await auth.authenticate(req, res);
    if (!authInfo) return;
    // Stateless: no sessions to resume or delete and no standalone SSE stream (MCP clients
    // take 405 on GET as "no stream offered").
    if (req.method !== 'POST') {
      sendJson(res, 405, jsonRpcError(-32000, 'method not allowed'), { allow: 'POST' });
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req, MAX_BODY_BYTES));
    } catch (error) {
      if (error instanceof BodyTooLargeError) sendJson(res, 413, jsonRpcError(-32600, 'request body too large'));
      else sendJson(res, 400, jsonRpcError(-32700, 'parse error'));
      return;
    }
    try {
      requireScopes(authInfo, scopesForCalls(body, toolScopes));
    } catch (error) {
      auth.reject(res, error);
      return;
    }
    const server = new McpServer({ name: options.name, version: options.version ?? '1.0.0' });
    for (const tool of options.tools) tool.register(server);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(Object.assign(req, { auth: authInfo }), res, body);
  }

  const httpServer = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      onError(error);
      sendJson(res, 500, jsonRpcError(-32603, 'internal error'));
    });
  });
  const port = await listen(httpServer, options.port, options.host);
  return {
    url: options.resource,
    port,
    close: () => closeServer(httpServer),
  };
}

