import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { auth, discoverOAuthServerInfo, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import { afterAll, beforeAll, expect } from 'vitest';
import { HeadlessOAuthProvider } from '../../test/support/mcp-client-provider.ts';
import { followAuthorization, newBrowser } from '../../test/support/oauth.ts';
import { freePort } from '../../test/support/running-server.ts';
import { conformanceSuite } from '../support/scenario.ts';
import { authorizationServerMetadataUrlOf, protectedResourceMetadataUrlOf, startMcpWorld, type McpWorld } from '../support/mcp-world.ts';

/*
 * The MCP TypeScript SDK's own client auth() flow, end to end: the example notes server (JWT
 * access tokens, per-tool scopes) in front of Castellan on FerretDB + Redis. Once with a Client
 * ID Metadata Document URL as client_id (the document on an HTTPS loopback site whose test CA
 * Castellan trusts), once with RFC 7591 dynamic registration. The SDK does everything it does
 * against any MCP server: 401 → RFC 9728 metadata → RFC 8414 metadata → registration or CIMD →
 * authorization URL with PKCE (S256) and the resource indicator. A scripted browser plays the
 * person (sign-in and consent), then the SDK trades the code, calls a tool, steps up on 403
 * insufficient_scope, and refreshes.
 */

interface Recorded {
  method: string;
  url: string;
  body: string;
  status: number;
  /** The answer's WWW-Authenticate, if any. */
  challenge: string;
}

/** A fetch that records every request (method, URL, form or JSON body) the SDK makes. */
function recordingFetch(): { fetch: typeof fetch; requests: Recorded[] } {
  const requests: Recorded[] = [];
  const recording: typeof fetch = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const body = typeof init?.body === 'string' ? init.body : init?.body instanceof URLSearchParams ? init.body.toString() : '';
    const response = await fetch(input, init);
    requests.push({ method: init?.method ?? 'GET', url, body, status: response.status, challenge: response.headers.get('www-authenticate') ?? '' });
    return response;
  };
  return { fetch: recording, requests };
}

const toolText = (result: CallToolResult) => result.content.map((part) => (part.type === 'text' ? part.text : '')).join('');

type Mode = 'CIMD' | 'DCR';

/** One client's walk through the flow; each check moves it on a step. */
interface Flow {
  provider: HeadlessOAuthProvider;
  recorder: ReturnType<typeof recordingFetch>;
  redirectUrl: string;
  clientMetadataUrl?: string;
  /** The code of the first authorization, for the exchange check. */
  code?: string;
}

conformanceSuite('mcp-sdk-auth', (scenario) => {
  let world: McpWorld;
  let issuer: string;
  let notesUrl: string;
  const flows = new Map<Mode, Flow>();

  const verifyAccessToken = async (token: unknown): Promise<JWTPayload> =>
    (await jwtVerify(String(token), createRemoteJWKSet(new URL(`${issuer}/jwks`)), {
      issuer, audience: notesUrl, typ: 'at+jwt',
    })).payload;

  /** Plays the person at the authorization URL the SDK produced; returns the redirect's parameters. */
  const authorize = async (flow: Flow): Promise<URLSearchParams> => {
    const url = flow.provider.authorizationUrl;
    if (!url) throw new Error('the SDK produced no authorization URL');
    return followAuthorization(newBrowser(), url.href, flow.redirectUrl, 'demo', world.castellan.userPassword);
  };

  /** An SDK client connected to the notes server through the Streamable HTTP transport, with the flow's provider. */
  const connect = async (flow: Flow): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> => {
    const transport = new StreamableHTTPClientTransport(new URL(notesUrl), { authProvider: flow.provider, fetch: flow.recorder.fetch });
    const client = new Client({ name: 'castellan-conformance', version: '1.0.0' });
    await client.connect(transport);
    return { client, transport };
  };

  const flowOf = (mode: Mode): Flow => {
    const flow = flows.get(mode);
    if (!flow) throw new Error(`the ${mode} flow was not set up`);
    return flow;
  };

  beforeAll(async () => {
    world = await startMcpWorld('conformance_mcp_sdk');
    issuer = world.castellan.issuer;
    notesUrl = world.notes.url;
    const [cimdPort, dcrPort] = await Promise.all([freePort(), freePort()]);
    const cimdRedirect = `http://127.0.0.1:${cimdPort}/callback`;
    const clientMetadataUrl = world.documents.url('/agents/conformance.json', '127.0.0.1');
    world.documents.json('/agents/conformance.json', {
      client_id: clientMetadataUrl,
      client_name: 'Conformance agent (CIMD)',
      redirect_uris: [cimdRedirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }, { 'cache-control': 'max-age=300' });
    flows.set('CIMD', {
      provider: new HeadlessOAuthProvider({ redirectUrl: cimdRedirect, clientName: 'Conformance agent (CIMD)', clientMetadataUrl }),
      recorder: recordingFetch(),
      redirectUrl: cimdRedirect,
      clientMetadataUrl,
    });
    const dcrRedirect = `http://127.0.0.1:${dcrPort}/callback`;
    flows.set('DCR', {
      provider: new HeadlessOAuthProvider({ redirectUrl: dcrRedirect, clientName: 'Conformance agent (DCR)' }),
      recorder: recordingFetch(),
      redirectUrl: dcrRedirect,
    });
  });
  afterAll(async () => world?.close());

  scenario('401 + resource_metadata: an unauthenticated MCP request gets a Bearer challenge naming the RFC 9728 metadata and the scope', async () => {
    const response = await fetch(notesUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${protectedResourceMetadataUrlOf(notesUrl)}", scope="notes:read"`);
    // And the SDK's transport turns it into UnauthorizedError after starting authorization.
    const probe: Flow = {
      provider: new HeadlessOAuthProvider({ redirectUrl: 'http://127.0.0.1:9/callback', clientName: 'probe' }),
      recorder: recordingFetch(),
      redirectUrl: 'http://127.0.0.1:9/callback',
    };
    await expect(connect(probe)).rejects.toBeInstanceOf(UnauthorizedError);
    expect(probe.provider.authorizationUrl?.href.startsWith(`${issuer}/auth?`)).toBe(true);
  });

  scenario('PRM → AS metadata: the SDK finds Castellan from the server URL (RFC 9728, then RFC 8414 path insertion)', async () => {
    const recorder = recordingFetch();
    const info = await discoverOAuthServerInfo(notesUrl, { fetchFn: recorder.fetch });
    expect(info.authorizationServerUrl).toBe(issuer);
    expect(info.resourceMetadata?.resource).toBe(notesUrl);
    expect(info.resourceMetadata?.authorization_servers).toEqual([issuer]);
    expect(info.authorizationServerMetadata?.issuer).toBe(issuer);
    expect(info.authorizationServerMetadata?.code_challenge_methods_supported).toContain('S256');
    // The first document the SDK tries for the AS is the RFC 8414 path-inserted one, and it is there.
    const urls = recorder.requests.map((r) => r.url);
    expect(urls[0]).toBe(protectedResourceMetadataUrlOf(notesUrl));
    expect(urls[1]).toBe(authorizationServerMetadataUrlOf(issuer));
    expect(urls).toHaveLength(2);
  });

  for (const mode of ['CIMD', 'DCR'] as const) {
    const registrationCheck = mode === 'CIMD'
      ? 'CIMD: auth() presents the Client ID Metadata Document URL as client_id, without registering; Castellan fetches the document'
      : 'DCR: auth() registers the client at the advertised registration_endpoint (RFC 7591) and gets a client_id';
    scenario(registrationCheck, async () => {
      const flow = flowOf(mode);
      expect(await auth(flow.provider, { serverUrl: notesUrl, fetchFn: flow.recorder.fetch })).toBe('REDIRECT');
      const registrations = flow.recorder.requests.filter((r) => r.method === 'POST' && r.url === `${issuer}/reg`);
      if (mode === 'CIMD') {
        expect(registrations).toEqual([]);
        expect(flow.provider.clientInformation()).toMatchObject({ client_id: flow.clientMetadataUrl });
        expect(flow.provider.clientInformation()).not.toHaveProperty('registration_access_token');
      } else {
        expect(registrations).toHaveLength(1);
        const clientId = flow.provider.clientInformation()?.client_id;
        expect(clientId).toEqual(expect.any(String));
        expect(clientId?.startsWith('https://')).toBe(false);
        expect(JSON.parse(registrations[0]?.body ?? '{}')).toMatchObject({ redirect_uris: [flow.redirectUrl], token_endpoint_auth_method: 'none' });
      }
      // Castellan accepts the client: its authorization request reaches the sign-in page.
      const page = await newBrowser().get(flow.provider.authorizationUrl?.href ?? '');
      expect(page.status).toBe(303);
      expect(page.headers.get('location')).toMatch(/\/t\/demo\/interaction\//);
      if (mode === 'CIMD') expect(world.documents.hits('/agents/conformance.json')).toBeGreaterThanOrEqual(1);
    });

    scenario(`${mode}: authorization request with PKCE S256 and the resource indicator; sign-in and consent return a code with iss (RFC 9207)`, async () => {
      const flow = flowOf(mode);
      const url = flow.provider.authorizationUrl;
      expect(`${url?.origin}${url?.pathname}`).toBe(`${issuer}/auth`);
      const params = Object.fromEntries(url?.searchParams ?? []);
      expect(params).toMatchObject({
        response_type: 'code',
        client_id: flow.provider.clientInformation()?.client_id,
        redirect_uri: flow.redirectUrl,
        code_challenge_method: 'S256',
        resource: notesUrl,
        scope: 'notes:read notes:write',
      });
      expect(params.code_challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const answer = await authorize(flow);
      expect(answer.get('error'), answer.toString()).toBeNull();
      expect(answer.get('code')).toEqual(expect.any(String));
      expect(answer.get('iss')).toBe(issuer);
      flow.code = answer.get('code') ?? '';
    });

    scenario(`${mode}: code exchange with the verifier gives a JWT access token whose audience is the MCP server`, async () => {
      const flow = flowOf(mode);
      expect(await auth(flow.provider, { serverUrl: notesUrl, authorizationCode: flow.code ?? '', fetchFn: flow.recorder.fetch })).toBe('AUTHORIZED');
      const tokenRequest = flow.recorder.requests.filter((r) => r.url === `${issuer}/token`).at(-1);
      const form = new URLSearchParams(tokenRequest?.body ?? '');
      expect(form.get('grant_type')).toBe('authorization_code');
      expect(form.get('code_verifier')).toMatch(/^[A-Za-z0-9._~-]{43,128}$/);
      expect(form.get('resource')).toBe(notesUrl);
      const tokens = flow.provider.tokens();
      expect(tokens?.token_type.toLowerCase()).toBe('bearer');
      const payload = await verifyAccessToken(tokens?.access_token);
      expect(payload.aud).toBe(notesUrl);
      expect(payload.client_id).toBe(flow.provider.clientInformation()?.client_id);
      expect(String(payload.scope).split(' ').sort()).toEqual(['notes:read', 'notes:write']);
      // The same code a second time is refused (RFC 6749 §4.1.2: one use).
      const again = await fetch(`${issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
      expect(again.status).toBe(400);
      expect(((await again.json()) as { error?: string }).error).toBe('invalid_grant');
    });

    scenario(`${mode}: tool call over Streamable HTTP with the token succeeds`, async () => {
      const flow = flowOf(mode);
      const { client } = await connect(flow);
      try {
        const tools = (await client.listTools()).tools.map((tool) => tool.name);
        expect(tools).toEqual(['list_notes', 'read_note', 'add_note']);
        const added = CallToolResultSchema.parse(await client.callTool({ name: 'add_note', arguments: { title: mode, text: 'conformance' } }));
        expect(added.isError, toolText(added)).toBeFalsy();
        const listed = CallToolResultSchema.parse(await client.callTool({ name: 'list_notes', arguments: {} }));
        // Notes are the user's (the token's sub): this one is among them.
        expect(JSON.parse(toolText(listed))).toContainEqual(expect.objectContaining({ title: mode }));
      } finally {
        await client.close();
      }
      expect(world.serverErrors).toEqual([]);
    });

    scenario(`${mode}: step-up — a write with a read-only token gets 403 insufficient_scope, the SDK re-authorizes with the larger scope and the write succeeds`, async () => {
      const flow = flowOf(mode);
      // A read-only session: the SDK authorizes with the scope the first 401 asked for.
      const readOnly = new HeadlessOAuthProvider({ redirectUrl: flow.redirectUrl, clientName: `Conformance agent (${mode})`, ...(flow.clientMetadataUrl ? { clientMetadataUrl: flow.clientMetadataUrl } : {}) });
      const info = flow.provider.clientInformation();
      if (info) readOnly.saveClientInformation(info);
      const stepFlow: Flow = { ...flow, provider: readOnly, recorder: recordingFetch() };
      expect(await auth(readOnly, { serverUrl: notesUrl, scope: 'notes:read', fetchFn: stepFlow.recorder.fetch })).toBe('REDIRECT');
      const first = await authorize(stepFlow);
      expect(await auth(readOnly, { serverUrl: notesUrl, authorizationCode: first.get('code') ?? '', fetchFn: stepFlow.recorder.fetch })).toBe('AUTHORIZED');
      expect((await verifyAccessToken(readOnly.tokens()?.access_token)).scope).toBe('notes:read');

      const { client, transport } = await connect(stepFlow);
      try {
        const write = () => client.callTool({ name: 'add_note', arguments: { title: 'step-up', text: mode } });
        await expect(write()).rejects.toBeInstanceOf(UnauthorizedError);
        const refused = stepFlow.recorder.requests.filter((r) => r.url === notesUrl && r.status === 403);
        expect(refused).toHaveLength(1);
        expect(refused[0]?.challenge).toMatch(/^Bearer error="insufficient_scope", /);
        expect(refused[0]?.challenge).toContain('scope="notes:read notes:write"');
        expect(readOnly.authorizationUrl?.searchParams.get('scope')).toBe('notes:read notes:write');
        expect(readOnly.authorizationUrl?.searchParams.get('resource')).toBe(notesUrl);
        const second = await authorize(stepFlow);
        await transport.finishAuth(second.get('code') ?? '');
        expect(String((await verifyAccessToken(readOnly.tokens()?.access_token)).scope).split(' ').sort()).toEqual(['notes:read', 'notes:write']);
        const added = CallToolResultSchema.parse(await write());
        expect(added.isError, toolText(added)).toBeFalsy();
      } finally {
        await client.close();
      }
      // A step-up needs no new registration.
      expect(stepFlow.recorder.requests.filter((r) => r.url === `${issuer}/reg`)).toEqual([]);
    });

    scenario(`${mode}: refresh — with offline_access the SDK's auth() renews the tokens at the token endpoint, rotating the refresh token, same audience`, async () => {
      const flow = flowOf(mode);
      const session = new HeadlessOAuthProvider({ redirectUrl: flow.redirectUrl, clientName: `Conformance agent (${mode})`, ...(flow.clientMetadataUrl ? { clientMetadataUrl: flow.clientMetadataUrl } : {}) });
      const info = flow.provider.clientInformation();
      if (info) session.saveClientInformation(info);
      const refreshFlow: Flow = { ...flow, provider: session, recorder: recordingFetch() };
      expect(await auth(session, { serverUrl: notesUrl, scope: 'notes:read offline_access', fetchFn: refreshFlow.recorder.fetch })).toBe('REDIRECT');
      // OIDC Core §11: offline_access needs prompt=consent, which the SDK adds.
      expect(session.authorizationUrl?.searchParams.get('prompt')).toBe('consent');
      const answer = await authorize(refreshFlow);
      expect(await auth(session, { serverUrl: notesUrl, authorizationCode: answer.get('code') ?? '', fetchFn: refreshFlow.recorder.fetch })).toBe('AUTHORIZED');
      const before = session.tokens();
      expect(before?.refresh_token).toEqual(expect.any(String));

      // No code: the SDK uses the refresh token it holds.
      expect(await auth(session, { serverUrl: notesUrl, fetchFn: refreshFlow.recorder.fetch })).toBe('AUTHORIZED');
      const refreshRequest = refreshFlow.recorder.requests.filter((r) => r.url === `${issuer}/token`).at(-1);
      const form = new URLSearchParams(refreshRequest?.body ?? '');
      expect(form.get('grant_type')).toBe('refresh_token');
      expect(form.get('resource')).toBe(notesUrl);
      const after = session.tokens();
      expect(after?.access_token).not.toBe(before?.access_token);
      expect(after?.refresh_token).toEqual(expect.any(String));
      expect(after?.refresh_token).not.toBe(before?.refresh_token);
      const payload = await verifyAccessToken(after?.access_token);
      expect(payload.aud).toBe(notesUrl);
      expect(payload.scope).toBe('notes:read');
      expect(decodeJwt(String(before?.access_token)).sub).toBe(payload.sub);
      // The renewed token works at the MCP server.
      const { client } = await connect(refreshFlow);
      try {
        const listed = CallToolResultSchema.parse(await client.callTool({ name: 'list_notes', arguments: {} }));
        expect(listed.isError, toolText(listed)).toBeFalsy();
      } finally {
        await client.close();
      }
    });
  }
});
