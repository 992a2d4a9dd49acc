import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { extractWWWAuthenticateParams, UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed } from '@modelcontextprotocol/sdk/shared/auth.js';
import { CallToolResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { startCallbackReceiver, type CallbackReceiver } from './callback-receiver.ts';
import { AgentOAuthProvider } from './oauth-provider.ts';
import { openInBrowser } from './open-url.ts';

/*
 * An MCP client that needs nothing but the MCP server's URL. Its first request is answered
 * 401 with a WWW-Authenticate `resource_metadata`; the SDK follows it to the RFC 9728 document,
 * from its `authorization_servers` to Castellan's RFC 8414 metadata, registers (or presents its
 * Client ID Metadata Document URL) and builds an authorization code + PKCE request. The agent
 * sends the user there, receives the code on a loopback redirect, and finishes. A 403
 * insufficient_scope later (a write with a read-only token) sends the user back to authorize
 * the larger scope, and the call is retried once.
 */

export interface AgentOptions {
  /** The MCP server, e.g. http://localhost:3001/mcp. */
  serverUrl: string;
  clientName?: string;
  /** A Client ID Metadata Document URL (https) to use as client_id; without it the agent registers (DCR). */
  clientMetadataUrl?: string;
  /** A client registered beforehand at the AS (client_id, client_secret): the agent does not register. */
  clientInformation?: OAuthClientInformationMixed;
  /**
   * A non-interactive OAuth provider (client credentials, a JWT bearer grant): the agent acts as
   * itself, with no user, no redirect and no registration; the other auth options are unused.
   */
  machineAuth?: OAuthClientProvider;
  /** Loopback port for the redirect; 0 (default) takes a free one. A metadata document must list the URI. */
  callbackPort?: number;
  /**
   * Sends the user to the authorization URL. Default (interactive): print it and open a browser
   * if there is one. Tests pass a headless one that signs in and follows the redirect to the
   * callback. Errors (thrown or rejected) end the wait for that authorization.
   */
  onAuthorizationUrl?: (url: URL) => void | Promise<void>;
  /** How long to wait for the user (default 5 minutes). */
  authorizationTimeoutMs?: number;
  fetch?: typeof fetch;
  log?: (line: string) => void;
}

export interface Agent {
  readonly redirectUrl: string;
  readonly clientId: string | undefined;
  /** Scopes of the current access token. */
  readonly grantedScopes: string[];
  /** Client registrations made (DCR); 0 with a metadata document URL. */
  readonly registrations: number;
  /** Authorization code flows completed (the first, then one per step-up). */
  readonly authorizations: number;
  listTools(): Promise<string[]>;
  callTool(name: string, args?: Record<string, unknown>): Promise<CallToolResult>;
  close(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 5 * 60_000;

/** Interactive mode: the user opens the URL. */
function printAndOpen(log: (line: string) => void): (url: URL) => void {
  return (url) => {
    log(`Open this URL to authorize the agent:\n\n  ${url.href}\n`);
    openInBrowser(url.href);
  };
}

/** A provider's answer when it is at hand (the SDK allows promises; the agent's getters are synchronous). */
function settled<T>(value: T | Promise<T>): T | undefined {
  return value instanceof Promise ? undefined : value;
}

/** The text of a tool result's text parts, joined. */
export function resultText(result: CallToolResult): string {
  return result.content.map((part) => (part.type === 'text' ? part.text : '')).join('');
}

export async function connectAgent(options: AgentOptions): Promise<Agent> {
  const log = options.log ?? ((line: string) => console.error(line));
  const timeoutMs = options.authorizationTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const sendUser = options.onAuthorizationUrl ?? printAndOpen(log);
  const callback: CallbackReceiver = await startCallbackReceiver({ port: options.callbackPort ?? 0 });
  let pending: Promise<URLSearchParams> | undefined;
  let authorizations = 0;

  const provider = new AgentOAuthProvider({
    redirectUrl: callback.redirectUrl,
    clientName: options.clientName ?? 'Castellan example agent',
    ...(options.clientMetadataUrl ? { clientMetadataUrl: options.clientMetadataUrl } : {}),
    ...(options.clientInformation ? { clientInformation: options.clientInformation } : {}),
    onRedirect(url) {
      const state = url.searchParams.get('state') ?? '';
      // Wait first, then send the user: the redirect cannot arrive before its waiter.
      pending = callback.expect(state, timeoutMs);
      pending.catch(() => {});
      Promise.resolve()
        .then(() => sendUser(url))
        .catch((error: unknown) => callback.fail(state, error instanceof Error ? error : new Error(String(error))));
    },
  });

  const baseFetch = options.fetch ?? fetch;
  const observingFetch: typeof fetch = async (input, init) => {
    const response = await baseFetch(input, init);
    if (response.status === 403 && extractWWWAuthenticateParams(response).error === 'insufficient_scope') {
      provider.requireNewAuthorization();
    }
    return response;
  };

  /** Waits for the user's redirect and trades its code for tokens (through the transport, which knows the server). */
  async function completeAuthorization(transport: StreamableHTTPClientTransport): Promise<void> {
    const waiting = pending;
    pending = undefined;
    if (!waiting) throw new Error('authorization required, but no authorization request was started');
    const params = await waiting;
    const error = params.get('error');
    if (error) throw new Error(`authorization refused: ${error}${params.get('error_description') ? ` (${params.get('error_description')})` : ''}`);
    // RFC 9207: the response must come from the AS we sent the user to (mix-up defence).
    const expected = provider.expectedIssuer();
    const iss = params.get('iss');
    if (expected && (iss ? iss !== expected.issuer : expected.required)) {
      throw new Error(`authorization response from ${iss ?? 'an unnamed issuer'}, expected ${expected.issuer}`);
    }
    const code = params.get('code');
    if (!code) throw new Error('authorization response without a code');
    await transport.finishAuth(code);
    authorizations += 1;
  }

  const authProvider = options.machineAuth ?? provider;
  const newTransport = () => new StreamableHTTPClientTransport(new URL(options.serverUrl), { authProvider, fetch: observingFetch });

  /** A connected client; a first 401 is answered by authorizing, then connecting again. */
  async function connect(): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    for (let attempt = 0; ; attempt += 1) {
      const transport = newTransport();
      const client = new Client({ name: 'castellan-example-agent', version: '1.0.0' });
      try {
        await client.connect(transport);
        return { client, transport };
      } catch (error) {
        // A failed connect closes its transport: authorize through it, then start anew.
        if (!(error instanceof UnauthorizedError) || attempt > 0) throw error;
        await completeAuthorization(transport);
      }
    }
  }

  let session: { client: Client; transport: StreamableHTTPClientTransport };
  try {
    session = await connect();
  } catch (error) {
    await callback.close();
    throw error;
  }

  /** Runs an operation; when it needs the user (token expired, step-up), authorizes and retries it once. */
  async function authorized<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (!(error instanceof UnauthorizedError)) throw error;
      await completeAuthorization(session.transport);
      return operation();
    }
  }

  return {
    redirectUrl: callback.redirectUrl,
    get clientId() {
      if (options.machineAuth) return settled(options.machineAuth.clientInformation())?.client_id;
      return provider.clientInformation()?.client_id;
    },
    get grantedScopes() {
      if (options.machineAuth) return (settled(options.machineAuth.tokens())?.scope ?? '').split(' ').filter((s) => s !== '');
      return provider.grantedScopes;
    },
    get registrations() {
      return provider.registrations;
    },
    get authorizations() {
      return authorizations;
    },
    listTools: () => authorized(async () => (await session.client.listTools()).tools.map((tool) => tool.name)),
    callTool: (name, args = {}) => authorized(async () =>
      CallToolResultSchema.parse(await session.client.callTool({ name, arguments: args }))),
    async close() {
      await session.client.close().catch(() => {});
      await callback.close();
    },
  };
}
