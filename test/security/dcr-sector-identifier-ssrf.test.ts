import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { startConnectionCounter, type ConnectionCounter } from '../support/connection-counter.ts';
import { makeTestPki, startDocumentServer, type DocumentServer } from '../registration/fixtures/cimd-document-server.ts';

/*
 * SSRF through a client's sector_identifier_uri (MCP Security Best Practices "Server-Side
 * Request Forgery (SSRF)"; OIDC Dynamic Client Registration §2, OIDC Core §8.1: a server that
 * supports it fetches the URI when the client is registered and checks the redirect_uris
 * against it). The URI would be chosen by whoever registers, i.e. an attacker.
 *
 * Castellan keeps no sector_identifier_uri (pairwise subjects are not offered): RFC 7591
 * registrations, RFC 7592 updates and Client ID Metadata Documents pass through
 * src/registration/client-metadata.ts, which drops every member it does not know. So nothing
 * is ever fetched, which the first tests prove against loopback, private, link-local and
 * metadata targets with a listener that counts connections. Behind that, oidc-provider's own
 * sector check (Client.validate, reached by any future path that keeps the member) goes through
 * the tenant's guarded fetch (src/tenants/provider-factory.ts `fetch`): the last tests run it
 * on the tenant's real provider and show refusals before connecting, no redirects, and bounded
 * bodies and time.
 */
const REDIRECT = 'https://app.example/callback';

describe('sector_identifier_uri of a self-registered client (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let docs: DocumentServer;
  let counter: ConnectionCounter | undefined;
  let port = 0;
  let caDir = '';

  const settingsWith = (privateNetworkAllowlist: string[]) => ({
    ...DEMO_TENANT_SETTINGS,
    // Many registrations from one address in one test: the hourly limit is not what is tested here.
    registration: { mode: 'open' as const, limits: { perIpPerHour: 10_000 } },
    clientIdMetadataDocuments: { ...DEMO_TENANT_SETTINGS.clientIdMetadataDocuments, privateNetworkAllowlist },
  });
  const useSettings = async (privateNetworkAllowlist: string[]) => {
    await castellan.running.storage.tenants.update('demo', { settings: settingsWith(privateNetworkAllowlist) });
    castellan.running.tenants.invalidate('demo');
  };

  beforeAll(async () => {
    const pki = makeTestPki('Castellan sector_identifier_uri SSRF test CA');
    docs = await startDocumentServer(pki);
    caDir = mkdtempSync(join(tmpdir(), 'castellan-sector-ca-'));
    writeFileSync(join(caDir, 'ca.pem'), pki.caCert);
    const env = { ...(await testEnvironment('mongo+redis', 'security_sector_ssrf')), CASTELLAN_FETCH_CA_FILE: join(caDir, 'ca.pem') };
    castellan = await startTestCastellan('mongo+redis', 'security_sector_ssrf', env);
    counter = await startConnectionCounter();
    port = counter.port;
  });
  afterAll(async () => {
    await counter?.close();
    await docs?.close();
    await castellan?.stop();
    if (caDir) rmSync(caDir, { recursive: true, force: true });
  });

  const registration = (sectorIdentifierUri: string, clientName: string) => ({
    client_name: clientName, redirect_uris: [REDIRECT], grant_types: ['authorization_code'], response_types: ['code'],
    token_endpoint_auth_method: 'none', sector_identifier_uri: sectorIdentifierUri,
  });

  async function register(sectorIdentifierUri: string, clientName: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${castellan.issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(registration(sectorIdentifierUri, clientName)),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }


  const inward = () => [
    `https://127.0.0.1:${port}/sector.json`,
    `https://localhost:${port}/sector.json`,
    `https://${hostname()}:${port}/sector.json`,
    `https://[::ffff:127.0.0.1]:${port}/sector.json`,
    `https://[::1]:${port}/sector.json`,
    `https://0.0.0.0:${port}/sector.json`,
    'https://169.254.169.254/latest/meta-data/sector.json',
    'https://[fd00:ec2::254]/latest/meta-data/sector.json',
    'https://[fe80::1]/sector.json',
    'https://10.0.0.1/sector.json',
    'https://172.16.0.1/sector.json',
    'https://192.168.1.1/sector.json',
    'https://100.64.0.1/sector.json',
  ];

  it('never fetches the sector_identifier_uri of a registration or an RFC 7592 update, and keeps none', async () => {
    // The document server is reachable (the tenant allows 127.0.0.1): a URI there would be fetched if it were kept.
    await useSettings(['127.0.0.1']);
    docs.json('/sector-kept.json', [REDIRECT]);
    const durable = castellan.running.storage.modelStores('demo').durable;
    for (const [i, uri] of [...inward(), docs.url('/sector-kept.json', '127.0.0.1')].entries()) {
      const answer = await register(uri, `sector ${i}`);
      expect(answer.status, `${uri}: ${JSON.stringify(answer.body)}`).toBe(201);
      expect(answer.body).not.toHaveProperty('sector_identifier_uri');
      const stored = await durable.find('Client', String(answer.body.client_id));
      expect(stored?.['client_name']).toBe(`sector ${i}`);
      expect(stored).not.toHaveProperty('sector_identifier_uri');
      // RFC 7592 §2.2: the client replaces its metadata, now naming a sector_identifier_uri again.
      const update = await fetch(String(answer.body.registration_client_uri), {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${String(answer.body.registration_access_token)}` },
        body: JSON.stringify({ ...registration(uri, `sector ${i} updated`), client_id: answer.body.client_id }),
      });
      const updated = (await update.json()) as Record<string, unknown>;
      expect(update.status, JSON.stringify(updated)).toBe(200);
      expect(updated.client_name).toBe(`sector ${i} updated`);
      expect(updated).not.toHaveProperty('sector_identifier_uri');
      expect(await durable.find('Client', String(answer.body.client_id))).not.toHaveProperty('sector_identifier_uri');
    }
    expect(counter?.connections()).toBe(0);
    expect(docs.hits('/sector-kept.json')).toBe(0);
  });

  it('never fetches the sector_identifier_uri of a Client ID Metadata Document', async () => {
    await useSettings(['127.0.0.1']);
    docs.json('/sector-cimd.json', ['http://127.0.0.1/callback']);
    const clientId = docs.url('/clients/sector-agent.json', '127.0.0.1');
    docs.json('/clients/sector-agent.json', {
      client_id: clientId, client_name: 'Sector agent', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none',
      sector_identifier_uri: docs.url('/sector-cimd.json', '127.0.0.1'),
    });
    const query = new URLSearchParams({
      client_id: clientId, response_type: 'code', redirect_uri: 'http://127.0.0.1/callback', scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 's',
    });
    const authorization = await fetch(`${castellan.issuer}/auth?${query}`, { redirect: 'manual' });
    // The document was fetched and accepted (the authorization goes on to the login page)...
    expect(authorization.status, await authorization.text()).toBe(303);
    expect(docs.hits('/clients/sector-agent.json')).toBe(1);
    // ...and the sector_identifier_uri in it was not.
    expect(docs.hits('/sector-cimd.json')).toBe(0);
  });

  describe("behind that, oidc-provider's sector check on the tenant's guarded fetch", () => {
    const validate = async (uri: string): Promise<unknown> => {
      const { provider } = await castellan.running.tenants.get('demo');
      const client = provider.Client as unknown as { validate(metadata: Record<string, unknown>): Promise<void> };
      return client.validate({
        client_id: 'sector-check', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', sector_identifier_uri: uri,
      }).then(() => undefined, (error: unknown) => error);
    };
    /** Refused as invalid_client_metadata; `code` names the guard's reason (GuardedFetchError), when it was the guard. */
    const expectRefused = (uri: string, outcome: unknown, code?: string | readonly string[]) => {
      expect(outcome, uri).toBeInstanceOf(Error);
      expect((outcome as { error?: unknown }).error, uri).toBe('invalid_client_metadata');
      if (code !== undefined) expect([code].flat(), uri).toContain((outcome as { cause?: { code?: unknown } }).cause?.code);
    };

    it('fetches and checks a sector document where the tenant allows (the check is real)', async () => {
      await useSettings(['127.0.0.1']);
      docs.json('/sector-ok.json', [REDIRECT]);
      expect(await validate(docs.url('/sector-ok.json', '127.0.0.1'))).toBeUndefined();
      expect(docs.hits('/sector-ok.json')).toBe(1);
      docs.json('/sector-other.json', ['https://elsewhere.example/cb']);
      expectRefused('sector-other', await validate(docs.url('/sector-other.json', '127.0.0.1')));
    });

    it('never connects to loopback, private, link-local or metadata addresses, nor to names resolving there', async () => {
      await useSettings([]);
      const hitsBefore = docs.hits('/sector-ok.json');
      // The document server too: allowed a moment ago, refused now that the tenant allows nothing private.
      for (const uri of [...inward(), docs.url('/sector-ok.json', '127.0.0.1')]) expectRefused(uri, await validate(uri), 'ADDRESS_REFUSED');
      expect(counter?.connections()).toBe(0);
      expect(docs.hits('/sector-ok.json')).toBe(hitsBefore);
    });

    it('refuses http, and a redirect without fetching the next hop', async () => {
      await useSettings(['127.0.0.1']);
      docs.json('/sector-target.json', [REDIRECT]);
      docs.route('/sector-redirect.json', (_req, res) => {
        res.writeHead(302, { location: docs.url('/sector-target.json', '127.0.0.1') }).end();
      });
      expectRefused('redirect', await validate(docs.url('/sector-redirect.json', '127.0.0.1')), 'REDIRECT_REFUSED');
      expect(docs.hits('/sector-redirect.json')).toBe(1);
      expect(docs.hits('/sector-target.json')).toBe(0);
      // (oidc-provider refuses a non-https sector_identifier_uri itself, before any fetch.)
      expectRefused('http', await validate(`http://127.0.0.1:${port}/sector.json`));
      expect(counter?.connections()).toBe(0);
    });

    it('bounds huge and slow answers: declared and streamed bodies over the cap, a silent server, a trickle, not JSON', async () => {
      await useSettings(['127.0.0.1']);
      const big = JSON.stringify([REDIRECT, ...Array.from({ length: 20_000 }, (_, i) => `https://app.example/${i}`)]);
      expect(big.length).toBeGreaterThan(64 * 1024);
      docs.route('/sector-declared.json', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(big.length) }).end(big);
      });
      let streamedBytes = 0;
      docs.route('/sector-streamed.json', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        // Chunked, no length: 10 MiB unless the reader stops.
        const chunk = ' '.repeat(64 * 1024);
        const write = () => {
          while (streamedBytes < 10 * 1024 * 1024 && !res.destroyed) {
            streamedBytes += chunk.length;
            if (!res.write(chunk)) return res.once('drain', write);
          }
          res.end();
        };
        write();
      });
      const held: Array<() => void> = [];
      docs.route('/sector-silent.json', (_req, res) => {
        held.push(() => res.destroy());
      });
      docs.route('/sector-trickle.json', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('[');
        const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write(' ')), 200);
        held.push(() => {
          clearInterval(timer);
          res.destroy();
        });
      });
      docs.json('/sector-html.json', `["${REDIRECT}"]`, { 'content-type': 'text/html' });
      try {
        // A slow server meets two deadlines of 2.5 s, ours (TIMEOUT) and oidc-provider's signal (ABORTED).
        const late = ['TIMEOUT', 'ABORTED'];
        for (const [path, code] of [
          ['/sector-declared.json', 'TOO_LARGE'], ['/sector-streamed.json', 'TOO_LARGE'], ['/sector-silent.json', late],
          ['/sector-trickle.json', late], ['/sector-html.json', 'CONTENT_TYPE_REFUSED'],
        ] as const) {
          expectRefused(path, await validate(docs.url(path, '127.0.0.1')), code);
          expect(docs.hits(path), path).toBe(1);
        }
        expect(streamedBytes).toBeLessThan(10 * 1024 * 1024);
      } finally {
        for (const release of held) release();
      }
    });
  });
});
