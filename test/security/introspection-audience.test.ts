import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, introspect, postToken } from '../support/oauth.ts';

/*
 * RFC 7662 §4 / RFC 8707: a resource server's own credentials, bound to its resource with
 * `introspectionClients`, learn about that resource's tokens only. A token for another
 * resource reads as inactive, exactly like an unknown one.
 */
const TENANT = 'introspection-audience';
const NOTES = 'https://notes.example.test/mcp';
const REPORTS = 'https://reports.example.test/api';

describe('introspection limited to the resources a client is bound to (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let issuer: string;
  const secrets = new Map<string, string>();
  const auth = (clientId: string) => basicAuth(clientId, secrets.get(clientId) ?? '');

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'sec_introspect_aud');
    issuer = `${castellan.baseUrl}/t/${TENANT}`;
    await castellan.running.storage.tenants.create({
      id: TENANT,
      displayName: 'Introspection audience',
      settings: {
        scopes: ['notes:read', 'reports:read'],
        resources: [
          { uri: NOTES, scopes: ['notes:read'], accessTokenFormat: 'opaque', introspectionClients: ['notes-rs'] },
          { uri: REPORTS, scopes: ['reports:read'], accessTokenFormat: 'opaque', introspectionClients: ['reports-rs'] },
        ],
      },
    });
    const clients = castellan.running.storage.modelStores(TENANT).durable;
    for (const clientId of ['worker', 'notes-rs', 'reports-rs', 'auditor']) {
      const secret = randomBytes(18).toString('base64url');
      secrets.set(clientId, secret);
      await clients.upsert('Client', clientId, {
        client_id: clientId, client_secret: secret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      });
    }
  });
  afterAll(async () => castellan?.stop());

  async function tokenFor(resource: string, scope: string): Promise<string> {
    const issued = await postToken(issuer, { grant_type: 'client_credentials', resource, scope }, auth('worker'));
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    return String(issued.body.access_token);
  }

  it("lets a bound resource server see its own resource's tokens and not another resource's", async () => {
    const notesToken = await tokenFor(NOTES, 'notes:read');
    const reportsToken = await tokenFor(REPORTS, 'reports:read');

    expect(await introspect(issuer, auth('notes-rs'), notesToken)).toMatchObject({ active: true, aud: NOTES, client_id: 'worker' });
    expect(await introspect(issuer, auth('notes-rs'), reportsToken)).toEqual({ active: false });
    expect(await introspect(issuer, auth('reports-rs'), reportsToken)).toMatchObject({ active: true, aud: REPORTS });
    expect(await introspect(issuer, auth('reports-rs'), notesToken)).toEqual({ active: false });
  });

  it('answers a foreign token exactly as an unknown one (no oracle)', async () => {
    const reportsToken = await tokenFor(REPORTS, 'reports:read');
    const unknown = randomBytes(32).toString('base64url');
    expect(await introspect(issuer, auth('notes-rs'), reportsToken)).toEqual(await introspect(issuer, auth('notes-rs'), unknown));
  });

  it('keeps the tenant default for clients bound to no resource, and own tokens for everyone', async () => {
    const notesToken = await tokenFor(NOTES, 'notes:read');
    expect(await introspect(issuer, auth('auditor'), notesToken)).toMatchObject({ active: true, aud: NOTES });
    expect(await introspect(issuer, auth('worker'), notesToken)).toMatchObject({ active: true });
  });
});
