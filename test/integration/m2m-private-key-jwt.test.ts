import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { postToken } from '../support/oauth.ts';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const REPORTS = 'http://localhost:3002/api';
const NOTES = 'http://localhost:3001/mcp';

describe('M2M client credentials with private_key_jwt (RFC 7523 §2.2) on FerretDB + Redis', () => {
  let castellan: TestCastellan;
  let key: CryptoKey;
  let otherKey: CryptoKey;

  const assertion = async (options: { jti?: string; signer?: CryptoKey; audience?: string; clientId?: string } = {}) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(options.clientId ?? 'worker')
      .setSubject(options.clientId ?? 'worker')
      .setAudience(options.audience ?? castellan.issuer)
      .setJti(options.jti ?? randomUUID())
      .setIssuedAt()
      .setExpirationTime('2m')
      .sign(options.signer ?? key);
  const tokenWith = async (client: string, signed: string, extra: Record<string, string> = {}) =>
    postToken(castellan.issuer, { grant_type: 'client_credentials', client_id: client, client_assertion_type: ASSERTION_TYPE, client_assertion: signed, ...extra });

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'm2m');
    const pair = await generateKeyPair('ES256', { extractable: true });
    key = pair.privateKey;
    otherKey = (await generateKeyPair('ES256')).privateKey;
    await castellan.running.storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        // The reports API admits only the worker; the notes server admits everyone.
        resources: (DEMO_TENANT_SETTINGS.resources ?? []).map((r) => (r.uri === REPORTS ? { ...r, allowedClients: ['worker'] } : r)),
      },
    });
    const clients = castellan.running.storage.modelStores('demo').durable;
    const jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), alg: 'ES256', use: 'sig' }] };
    for (const [id, scope] of [['worker', 'reports:read notes:read'], ['other-worker', 'notes:read']] as const) {
      await clients.upsert('Client', id, {
        client_id: id, grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
        token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256', jwks, scope,
      });
    }
    castellan.running.tenants.invalidate('demo');
  });
  afterAll(async () => castellan?.stop());

  it('issues a token to a client that signs its assertion with its registered key', async () => {
    const { status, body } = await tokenWith('worker', await assertion(), { resource: REPORTS, scope: 'reports:read' });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.scope).toBe('reports:read');
  });

  it('refuses a replayed assertion (jti single use), also when 10 race', async () => {
    const signed = await assertion();
    const results = await Promise.all(Array.from({ length: 10 }, () => tokenWith('worker', signed)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    for (const refused of results.filter((r) => r.status !== 200)) expect(refused.body.error).toBe('invalid_client');
    expect((await tokenWith('worker', signed)).body.error).toBe('invalid_client');
  });

  it('refuses an assertion signed by another key, for another audience, or naming another client', async () => {
    expect((await tokenWith('worker', await assertion({ signer: otherKey }))).body.error).toBe('invalid_client');
    expect((await tokenWith('worker', await assertion({ audience: 'https://elsewhere.example' }))).body.error).toBe('invalid_client');
    // The assertion names another client than client_id: refused before any signature check.
    expect((await tokenWith('worker', await assertion({ clientId: 'other-worker' }))).body.error).toBe('invalid_request');
  });

  it('keeps each client to its allowed resources and scopes', async () => {
    const otherAssertion = await assertion({ clientId: 'other-worker' });
    const refusedResource = await tokenWith('other-worker', otherAssertion, { resource: REPORTS });
    expect(refusedResource).toMatchObject({ status: 400, body: { error: 'invalid_target' } });
    const refusedScope = await tokenWith('other-worker', await assertion({ clientId: 'other-worker' }), { resource: NOTES, scope: 'notes:write' });
    expect(refusedScope).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });
    const allowed = await tokenWith('other-worker', await assertion({ clientId: 'other-worker' }), { resource: NOTES, scope: 'notes:read' });
    expect(allowed.status, JSON.stringify(allowed.body)).toBe(200);
  });
});
