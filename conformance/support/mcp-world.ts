import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNotesServer } from '../../mcp-examples/notes-server/notes-server.ts';
import { startReportsServer } from '../../mcp-examples/reports-server/reports-server.ts';
import type { RunningHttpServer } from '../../mcp-examples/shared/http.ts';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { makeTestPki, startDocumentServer, type DocumentServer } from '../../test/registration/fixtures/cimd-document-server.ts';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../../test/support/castellan.ts';
import { freePort } from '../../test/support/running-server.ts';

/**
 * Castellan on the production stores (FerretDB + Redis) with the demo tenant, and the example
 * MCP servers in front of it: the notes server (JWT access tokens) and the reports server
 * (opaque tokens, introspection), on free loopback ports the demo tenant knows as resources.
 * Client ID Metadata Documents come from an HTTPS site on loopback whose test CA Castellan
 * trusts (CASTELLAN_FETCH_CA_FILE); the tenant allows loopback for them
 * (`privateNetworkAllowlist`), as an operator would for documents served inside its network.
 */
export interface McpWorld {
  castellan: TestCastellan;
  notes: RunningHttpServer;
  reports: RunningHttpServer;
  documents: DocumentServer;
  /** Errors the MCP servers reported (a 500 on their side); a check may assert none. */
  serverErrors: unknown[];
  close(): Promise<void>;
}

export async function startMcpWorld(name: string): Promise<McpWorld> {
  const pki = makeTestPki(`castellan conformance ${name} CA`);
  const documents = await startDocumentServer(pki);
  const caDir = await mkdtemp(join(tmpdir(), 'castellan-conformance-ca-'));
  const caFile = join(caDir, 'ca.pem');
  await writeFile(caFile, pki.caCert);
  const env = { ...(await testEnvironment('mongo+redis', name)), CASTELLAN_FETCH_CA_FILE: caFile };
  const castellan = await startTestCastellan('mongo+redis', name, env);
  const [notesPort, reportsPort] = await Promise.all([freePort(), freePort()]);
  const uris = { notes: `http://localhost:${notesPort}/mcp`, reports: `http://localhost:${reportsPort}/api` };
  await castellan.running.storage.tenants.update('demo', {
    settings: {
      ...DEMO_TENANT_SETTINGS,
      resources: [
        { uri: uris.notes, name: 'Notes MCP server', scopes: ['notes:read', 'notes:write'], accessTokenFormat: 'jwt' },
        { uri: uris.reports, name: 'Reports API', scopes: ['reports:read'], accessTokenFormat: 'opaque' },
      ],
      clientIdMetadataDocuments: { enabled: true, privateNetworkAllowlist: ['127.0.0.1'] },
    },
  });
  castellan.running.tenants.invalidate('demo');
  const serverErrors: unknown[] = [];
  const onError = (error: unknown) => serverErrors.push(error);
  const [notes, reports] = await Promise.all([
    startNotesServer({ port: notesPort, issuer: castellan.issuer, resource: uris.notes, onError }),
    startReportsServer({
      port: reportsPort, issuer: castellan.issuer, resource: uris.reports,
      clientId: 'demo-service', clientSecret: castellan.clientSecret, onError,
    }),
  ]);
  return {
    castellan,
    notes,
    reports,
    documents,
    serverErrors,
    async close() {
      await Promise.all([notes.close(), reports.close()]);
      await documents.close();
      await castellan.stop();
      await rm(caDir, { recursive: true, force: true });
    },
  };
}

/** RFC 9728 §3.1: the protected resource metadata URL of a resource (path insertion). */
export function protectedResourceMetadataUrlOf(resource: string): string {
  const url = new URL(resource);
  return `${url.origin}/.well-known/oauth-protected-resource${url.pathname === '/' ? '' : url.pathname}`;
}

/** RFC 8414 §3.1: the authorization server metadata URL of an issuer (path insertion). */
export function authorizationServerMetadataUrlOf(issuer: string, wellKnown = 'oauth-authorization-server'): string {
  const url = new URL(issuer);
  return `${url.origin}/.well-known/${wellKnown}${url.pathname === '/' ? '' : url.pathname}`;
}

/** GETs a JSON document; throws with the status and the start of the body when it is not 200 JSON. */
export async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ body: Record<string, unknown>; response: Response }> {
  const response = await fetch(url, { headers: { accept: 'application/json', ...headers } });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}: ${text.slice(0, 300)}`);
  return { body: JSON.parse(text) as Record<string, unknown>, response };
}
