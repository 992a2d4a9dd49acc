import { mkdtemp, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectAgent, resultText, type Agent, type AgentOptions } from '../../mcp-examples/agent/agent.ts';
import { startDownstreamApi, type WhoAmI } from '../../mcp-examples/downstream-api/downstream-api.ts';
import { startGateway } from '../../mcp-examples/gateway/gateway.ts';
import { startNotesServer } from '../../mcp-examples/notes-server/notes-server.ts';
import { startReportsServer } from '../../mcp-examples/reports-server/reports-server.ts';
import type { RunningHttpServer } from '../../mcp-examples/shared/http.ts';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { createOtherTenant, revoke, serviceToken } from '../resource-server/support.ts';
import { makeTestPki, startDocumentServer, type DocumentServer } from '../registration/fixtures/cimd-document-server.ts';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { followAuthorization, newBrowser } from '../support/oauth.ts';
import { freePort } from '../support/running-server.ts';

/*
 * The examples in mcp-examples/ against a real Castellan (FerretDB + Redis): the notes server
 * (JWT), the reports server (opaque, introspection), the gateway and its downstream API (token
 * exchange), all on free loopback ports the demo tenant is told about, and the agent, driven
 * headless: its authorization URLs are walked by a scripted browser that signs in as the demo
 * user and follows the last redirect to the agent's loopback callback.
 */

interface Answer {
  status: number;
  challenge: string;
  body: string;
}

/** An HTTP request with the headers given as they are (several values allowed), and a JSON body if any. */
function send(method: string, url: string, headers: Record<string, string | string[]>, message?: unknown): Promise<Answer> {
  const body = message === undefined ? '' : JSON.stringify(message);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      headers: {
        ...(message === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        accept: 'application/json, text/event-stream',
        ...headers,
      },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, challenge: String(res.headers['www-authenticate'] ?? ''), body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A JSON-RPC request to an MCP endpoint (tools/list unless told). */
const post = (url: string, headers: Record<string, string | string[]>, message: unknown = { jsonrpc: '2.0', id: 1, method: 'tools/list' }) =>
  send('POST', url, headers, message);

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const toolCall = (name: string, args: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name, arguments: args } });
const metadataUrlOf = (resource: string) => `${new URL(resource).origin}/.well-known/oauth-protected-resource${new URL(resource).pathname}`;

describe('the MCP examples against Castellan (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let notes: RunningHttpServer;
  let reports: RunningHttpServer;
  let gateway: RunningHttpServer;
  let downstream: RunningHttpServer;
  let documents: DocumentServer;
  const agents: Agent[] = [];
  const serverErrors: unknown[] = [];
  const onError = (error: unknown) => serverErrors.push(error);

  /** An agent whose user signs in as demo and approves; records each authorization URL. */
  async function headlessAgent(serverUrl: string, extra: Partial<AgentOptions> = {}): Promise<{ agent: Agent; authorizationUrls: URL[] }> {
    const authorizationUrls: URL[] = [];
    const browser = newBrowser();
    const agent = await connectAgent({
      serverUrl,
      clientName: 'e2e agent',
      authorizationTimeoutMs: 10_000,
      log: () => {},
      async onAuthorizationUrl(url) {
        authorizationUrls.push(url);
        const redirectUri = url.searchParams.get('redirect_uri') ?? '';
        const params = await followAuthorization(browser, url.href, redirectUri, 'demo', castellan.userPassword);
        // The browser's last hop: the redirect to the agent's loopback callback.
        const response = await fetch(`${redirectUri}?${params}`);
        await response.body?.cancel();
      },
      ...extra,
    });
    agents.push(agent);
    return { agent, authorizationUrls };
  }

  beforeAll(async () => {
    // Client ID Metadata Documents come from an HTTPS server on loopback with a test CA that
    // Castellan is told to trust; the tenant allowlists loopback for them.
    const pki = makeTestPki('castellan mcp-examples test CA');
    documents = await startDocumentServer(pki);
    const caFile = join(await mkdtemp(join(tmpdir(), 'castellan-mcp-examples-ca-')), 'ca.pem');
    await writeFile(caFile, pki.caCert);
    const env = { ...(await testEnvironment('mongo+redis', 'mcp_examples')), CASTELLAN_FETCH_CA_FILE: caFile };
    castellan = await startTestCastellan('mongo+redis', 'mcp_examples', env);
    const [notesPort, reportsPort, gatewayPort, downstreamPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const uris = {
      notes: `http://localhost:${notesPort}/mcp`,
      reports: `http://localhost:${reportsPort}/api`,
      gateway: `http://localhost:${gatewayPort}/mcp`,
      downstream: `http://localhost:${downstreamPort}/api`,
    };
    // The demo tenant, with its four resources moved to the ports bound here.
    await castellan.running.storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        resources: [
          { uri: uris.notes, scopes: ['notes:read', 'notes:write'], accessTokenFormat: 'jwt' },
          { uri: uris.reports, scopes: ['reports:read'], accessTokenFormat: 'opaque' },
          { uri: uris.gateway, scopes: ['notes:read'], accessTokenFormat: 'jwt' },
          { uri: uris.downstream, scopes: ['notes:read'], accessTokenFormat: 'jwt' },
        ],
        tokenExchange: { enabled: true, rules: [{ client: 'demo-service', audiences: [uris.downstream] }] },
        clientIdMetadataDocuments: { enabled: true, privateNetworkAllowlist: ['127.0.0.1'] },
      },
    });
    castellan.running.tenants.invalidate('demo');
    const { issuer } = castellan;
    [notes, reports, gateway, downstream] = await Promise.all([
      startNotesServer({ port: notesPort, issuer, resource: uris.notes, onError }),
      startReportsServer({ port: reportsPort, issuer, resource: uris.reports, clientId: 'demo-service', clientSecret: castellan.clientSecret, onError }),
      startGateway({
        port: gatewayPort, issuer, resource: uris.gateway, downstream: uris.downstream,
        clientId: 'demo-service', clientSecret: castellan.clientSecret, onError,
      }),
      startDownstreamApi({ port: downstreamPort, issuer, resource: uris.downstream, onError }),
    ]);
  });

  afterEach(() => {
    // Whatever a test sent, no server may have failed on it (a 500).
    expect(serverErrors.splice(0)).toEqual([]);
  });

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.close()));
    await Promise.all([notes, reports, gateway, downstream].map((server) => server?.close()));
    await documents?.close();
    await castellan?.stop();
  });

  it('takes an agent from the first 401 to a tool call: PRM, AS metadata, DCR, code + PKCE', async () => {
    const first = await post(notes.url, {});
    expect(first.status).toBe(401);
    expect(first.challenge).toBe(`Bearer resource_metadata="${metadataUrlOf(notes.url)}", scope="notes:read"`);

    const fetched: string[] = [];
    const recording: typeof fetch = (input, init) => {
      fetched.push(`${init?.method ?? 'GET'} ${input instanceof Request ? input.url : String(input)}`);
      return fetch(input, init);
    };
    const { agent, authorizationUrls } = await headlessAgent(notes.url, { fetch: recording });

    // Everything came from the 401: its resource_metadata, then the AS named there (RFC 8414
    // path insertion), then registration and the code exchange at the endpoints it lists.
    expect(fetched.slice(0, 5)).toEqual([
      `POST ${notes.url}`,
      `GET ${metadataUrlOf(notes.url)}`,
      `GET ${castellan.baseUrl}/.well-known/oauth-authorization-server/t/demo`,
      `POST ${castellan.issuer}/reg`,
      `POST ${castellan.issuer}/token`,
    ]);
    expect(agent.registrations).toBe(1);
    expect(agent.authorizations).toBe(1);
    const [authorization] = authorizationUrls;
    expect(`${authorization?.origin}${authorization?.pathname}`).toBe(`${castellan.issuer}/auth`);
    expect(Object.fromEntries(authorization?.searchParams ?? [])).toMatchObject({
      client_id: agent.clientId,
      resource: notes.url,
      scope: 'notes:read',
      code_challenge_method: 'S256',
      redirect_uri: agent.redirectUrl,
    });
    expect(agent.grantedScopes).toEqual(['notes:read']);

    expect(await agent.listTools()).toEqual(['list_notes', 'read_note', 'add_note']);
    const listed = await agent.callTool('list_notes');
    expect(listed.isError).toBeFalsy();
    expect(JSON.parse(resultText(listed))).toEqual([]);
  });

  it('identifies the agent by its Client ID Metadata Document URL when it has one, without registering', async () => {
    const callbackPort = await freePort();
    const clientId = documents.url('/agents/notes-agent.json', '127.0.0.1');
    documents.json('/agents/notes-agent.json', {
      client_id: clientId,
      client_name: 'e2e agent (CIMD)',
      redirect_uris: [`http://127.0.0.1:${callbackPort}/callback`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }, { 'cache-control': 'max-age=300' });

    const { agent, authorizationUrls } = await headlessAgent(notes.url, { clientMetadataUrl: clientId, callbackPort });
    expect(agent.clientId).toBe(clientId);
    expect(agent.registrations).toBe(0);
    expect(authorizationUrls[0]?.searchParams.get('client_id')).toBe(clientId);
    expect(documents.hits('/agents/notes-agent.json')).toBeGreaterThanOrEqual(1);
    expect((await agent.callTool('list_notes')).isError).toBeFalsy();
  });

  it('steps up: a write with a read-only token is 403 insufficient_scope, the agent re-authorizes and the write succeeds', async () => {
    const readOnly = await serviceToken(castellan, { resource: notes.url, scope: 'notes:read' });
    const refused = await post(notes.url, bearer(readOnly), toolCall('add_note', { title: 't', text: 'x' }));
    expect(refused.status).toBe(403);
    expect(refused.challenge).toMatch(/^Bearer error="insufficient_scope", /);
    expect(refused.challenge).toContain('scope="notes:read notes:write"');
    expect(refused.challenge).toContain(`resource_metadata="${metadataUrlOf(notes.url)}"`);
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'insufficient_scope' });
    expect(JSON.parse(refused.body).error_description).toContain('notes:write');

    const { agent, authorizationUrls } = await headlessAgent(notes.url);
    expect(agent.grantedScopes).toEqual(['notes:read']);
    const added = await agent.callTool('add_note', { title: 'Groceries', text: 'milk, bread' });
    expect(added.isError, resultText(added)).toBeFalsy();
    expect(agent.authorizations).toBe(2);
    expect(authorizationUrls[1]?.searchParams.get('scope')).toBe('notes:read notes:write');
    expect(agent.grantedScopes.sort()).toEqual(['notes:read', 'notes:write']);
    expect(agent.registrations).toBe(1);

    const { id } = JSON.parse(resultText(added)) as { id: string };
    expect(JSON.parse(resultText(await agent.callTool('list_notes')))).toEqual([{ id, title: 'Groceries' }]);
    expect(JSON.parse(resultText(await agent.callTool('read_note', { id })))).toMatchObject({ title: 'Groceries', text: 'milk, bread' });
    // The read-only service token still reads, and still cannot write.
    expect((await post(notes.url, bearer(readOnly), toolCall('list_notes'))).status).toBe(200);
  });

  it('refuses a token issued for another server (audience)', async () => {
    const forNotes = await serviceToken(castellan, { resource: notes.url, scope: 'notes:read' });
    const forReports = await serviceToken(castellan, { resource: reports.url, scope: 'reports:read' });
    const forGateway = await serviceToken(castellan, { resource: gateway.url, scope: 'notes:read' });
    expect((await post(notes.url, bearer(forNotes))).status).toBe(200);

    const refusals = [
      [reports.url, () => post(reports.url, bearer(forNotes))],
      [notes.url, () => post(notes.url, bearer(forReports))],
      [gateway.url, () => post(gateway.url, bearer(forNotes))],
      // A token for the gateway is no good downstream: the gateway has to exchange it.
      [downstream.url, () => send('GET', `${downstream.url}/whoami`, bearer(forGateway))],
    ] as const;
    for (const [resource, attempt] of refusals) {
      const answer = await attempt();
      expect(answer.status, `${resource} took a token for another resource`).toBe(401);
      expect(answer.challenge).toContain('error="invalid_token"');
      expect(answer.challenge).toContain(`resource_metadata="${metadataUrlOf(resource)}"`);
    }
  });

  it('refuses a revoked opaque token at once on the introspecting reports server', async () => {
    const { agent } = await headlessAgent(reports.url);
    expect(agent.grantedScopes).toEqual(['reports:read']);
    const listed = await agent.callTool('list_reports');
    expect(JSON.parse(resultText(listed))).toContainEqual({ id: 'q1-usage', title: 'Q1 usage' });

    const token = await serviceToken(castellan, { resource: reports.url, scope: 'reports:read' });
    expect(token.split('.')).toHaveLength(1);
    expect((await post(reports.url, bearer(token), toolCall('get_report', { id: 'q1-usage' }))).status).toBe(200);
    await revoke(castellan, token);
    const after = await post(reports.url, bearer(token), toolCall('get_report', { id: 'q1-usage' }));
    expect(after.status).toBe(401);
    expect(after.challenge).toContain('error="invalid_token"');
  });

  it('refuses tokens of another tenant, even for the same resource URI', async () => {
    const other = await createOtherTenant(castellan);
    await castellan.running.storage.tenants.update('other', {
      settings: {
        scopes: ['notes:read', 'reports:read'],
        resources: [
          { uri: notes.url, scopes: ['notes:read'], accessTokenFormat: 'jwt' },
          { uri: reports.url, scopes: ['reports:read'], accessTokenFormat: 'opaque' },
        ],
      },
    });
    castellan.running.tenants.invalidate('other');
    const jwt = await serviceToken(castellan, { resource: notes.url, scope: 'notes:read' }, other.issuer, other.secret, other.clientId);
    const opaque = await serviceToken(castellan, { resource: reports.url, scope: 'reports:read' }, other.issuer, other.secret, other.clientId);
    for (const [url, token] of [[notes.url, jwt], [reports.url, opaque]] as const) {
      const answer = await post(url, bearer(token));
      expect(answer.status).toBe(401);
      expect(answer.challenge).toContain('error="invalid_token"');
    }
  });

  it('answers malformed Authorization headers with 401 and the right challenge, never 500', async () => {
    const cases: Array<[string, Record<string, string | string[]>, string | undefined]> = [
      ['no header', {}, undefined],
      ['another scheme', { authorization: 'Basic ZGVtbzpkZW1v' }, undefined],
      ['Bearer without a token', { authorization: 'Bearer' }, 'invalid_request'],
      ['Bearer and blanks', { authorization: 'Bearer    ' }, 'invalid_request'],
      ['two tokens', { authorization: 'Bearer abc def' }, 'invalid_request'],
      ['two Authorization headers', { authorization: ['Bearer abc', 'Bearer def'] }, 'invalid_request'],
      ['characters outside b64token', { authorization: 'Bearer ab"c' }, 'invalid_request'],
      ['latin-1 bytes', { authorization: 'Bearer t\u00e4ken' }, 'invalid_request'],
      ['a huge token', { authorization: `Bearer ${'a'.repeat(9000)}` }, 'invalid_request'],
      ['garbage token', { authorization: 'Bearer not-a-token' }, 'invalid_token'],
      ['unsigned JWT', { authorization: 'Bearer eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.' }, 'invalid_token'],
      ['lower-case scheme, garbage token', { authorization: 'bearer x.y.z' }, 'invalid_token'],
    ];
    for (const server of [notes, reports]) {
      const scope = server === notes ? 'notes:read' : 'reports:read';
      for (const [name, headers, error] of cases) {
        const answer = await post(server.url, headers);
        expect(answer.status, `${name} at ${server.url}`).toBe(401);
        expect(answer.challenge, name).toMatch(/^Bearer /);
        expect(answer.challenge, name).toContain(`resource_metadata="${metadataUrlOf(server.url)}"`);
        expect(answer.challenge, name).toContain(`scope="${scope}"`);
        if (error) expect(answer.challenge, name).toContain(`error="${error}"`);
        else expect(answer.challenge, name).not.toContain('error=');
      }
      const inQuery = await post(`${server.url}?access_token=abc`, {});
      expect(inQuery.status).toBe(401);
      expect(inQuery.challenge).toContain('error="invalid_request"');
    }
  });

  it('gateway: calls the downstream API through token exchange; the downstream sees itself as audience and the act chain', async () => {
    const { agent } = await headlessAgent(gateway.url);
    expect(agent.grantedScopes).toEqual(['notes:read']);
    const result = await agent.callTool('downstream_whoami');
    expect(result.isError, resultText(result)).toBeFalsy();
    const { downstream: seen } = JSON.parse(resultText(result)) as { downstream: WhoAmI };
    expect(seen.audience).toBe(downstream.url);
    // Issued to the gateway's client by exchange, not the agent's token passed through.
    expect(seen.clientId).toBe('demo-service');
    expect(seen.scopes).toEqual(['notes:read']);
    expect(seen.act).toEqual({ sub: 'demo-service', act: { sub: agent.clientId } });
    expect(seen.delegationChain).toEqual(['demo-service', agent.clientId]);
    const user = await castellan.running.storage.users.findByLogin('demo', 'demo');
    expect(seen.subject).toBe(user?.id);
  });
});
