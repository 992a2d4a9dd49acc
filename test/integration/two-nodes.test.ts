import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/observability/audit-chain.ts';
import { AUDIT_COLLECTION, type AuditLinkDocument } from '../../src/observability/audit-events.mongo.ts';
import { hashClientSecret } from '../../src/registration/client-secrets.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { freePort } from '../support/running-server.ts';
import { testServers } from '../support/servers.ts';
import { basicAuth, codeRedemption, introspect as introspectAt, postToken, runCodeFlow } from '../support/oauth.ts';

/*
 * Two Castellan nodes on the same FerretDB and Redis (as behind a load balancer: one public
 * base URL, two ports). Each node caches clients in memory and reads token copies from
 * Redis (src/storage/client-cache.ts, src/storage/redis/read-copies.ts): a change made on
 * one node must hold on the other — revocations at once, client changes within the pub/sub
 * bound.
 */

/** Client changes reach the other node through Redis pub/sub: well under this. */
const PUBSUB_BOUND_MS = 1000;
/**
 * Tenant settings and signing keys: each node re-reads a tenant it serves at most every
 * 10 s (src/tenants/tenant-registry.ts refreshAfterMs), so a change shows within that, plus
 * the time to rebuild the provider.
 */
const TENANT_BOUND_MS = 12_000;
const REDIRECT = 'http://127.0.0.1:53682/callback';

let a: TestCastellan;
let b: TestCastellan;
let issuerA: string;
let issuerB: string;
let mongo: MongoClient;

beforeAll(async () => {
  a = await startTestCastellan('mongo+redis', 'two-nodes');
  // Same stores, same public URL and secrets; only the listening port differs.
  b = await startTestCastellan('mongo+redis', 'two-nodes', { ...a.env, PORT: String(await freePort()) });
  issuerA = `${a.running.url}/t/demo`;
  issuerB = `${b.running.url}/t/demo`;
  mongo = new MongoClient(testServers().mongoUrl);
  await mongo.connect();
});

afterAll(async () => {
  await b?.stop();
  await a?.stop();
  await mongo?.close();
});

const introspect = (issuer: string, auth: string, token: string) => introspectAt(issuer, auth, token);

async function revoke(issuer: string, auth: string, token: string): Promise<void> {
  const response = await fetch(`${issuer}/token/revocation`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
    body: new URLSearchParams({ token }).toString(),
  });
  expect(response.status).toBe(200);
}

/** Polls `check` until it holds or `boundMs` passed; returns whether it held. */
async function within(boundMs: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('two nodes on the same stores', () => {
  it('a code issued through node A is redeemed on node B; replayed on A, it revokes what B issued', async () => {
    const flow = await runCodeFlow({
      issuer: issuerA, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid offline_access',
      login: 'demo', password: a.userPassword, extra: { prompt: 'consent' },
    });
    const redeem = codeRedemption(flow, 'demo-agent', REDIRECT);
    const onB = await postToken(issuerB, redeem);
    expect(onB.status, JSON.stringify(onB.body)).toBe(200);
    const rotated = await postToken(issuerB, { grant_type: 'refresh_token', client_id: 'demo-agent', refresh_token: String(onB.body.refresh_token) });
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);

    // Single use across nodes: A refuses the code, and the reuse revokes the grant (RFC 9700
    // §4.5.3), so the pair B rotated to is dead on both nodes.
    expect((await postToken(issuerA, redeem)).body.error).toBe('invalid_grant');
    for (const issuer of [issuerA, issuerB]) {
      const again = await postToken(issuer, { grant_type: 'refresh_token', client_id: 'demo-agent', refresh_token: String(rotated.body.refresh_token) });
      expect(again.body.error).toBe('invalid_grant');
    }
  });

  it('an opaque token revoked on node A is inactive at node B\'s very next introspection', async () => {
    const service = basicAuth('demo-service', a.clientSecret);
    const issued = await postToken(issuerA, { grant_type: 'client_credentials' }, service);
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    const token = String(issued.body.access_token);
    // B reads it twice: the second answer comes from B's read copy.
    expect(await introspect(issuerB, service, token)).toMatchObject({ active: true, client_id: 'demo-service' });
    expect(await introspect(issuerB, service, token)).toMatchObject({ active: true });

    await revoke(issuerA, service, token);
    expect(await introspect(issuerB, service, token)).toEqual({ active: false });
    expect(await introspect(issuerA, service, token)).toEqual({ active: false });
  });

  it('revoking a refresh token on node A kills its grant\'s access token at node B at once', async () => {
    const service = basicAuth('demo-service', a.clientSecret);
    const flow = await runCodeFlow({
      issuer: issuerA,
      clientId: 'demo-agent',
      redirectUri: REDIRECT,
      scope: 'openid offline_access',
      login: 'demo',
      password: a.userPassword,
      extra: { prompt: 'consent' },
    });
    const tokens = await postToken(issuerA, {
      grant_type: 'authorization_code',
      client_id: 'demo-agent',
      code: flow.code,
      redirect_uri: REDIRECT,
      code_verifier: flow.verifier,
    });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    const accessToken = String(tokens.body.access_token);
    expect(await introspect(issuerB, service, accessToken)).toMatchObject({ active: true });
    expect(await introspect(issuerB, service, accessToken)).toMatchObject({ active: true });

    // RFC 7009 §2.1: revoking a refresh token revokes its grant's access tokens too.
    const revoked = await fetch(`${issuerA}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: String(tokens.body.refresh_token), client_id: 'demo-agent' }).toString(),
    });
    expect(revoked.status).toBe(200);
    expect(await introspect(issuerB, service, accessToken)).toEqual({ active: false });
  });

  it('a client secret rotated on node A is refused on node B within the pub/sub bound', async () => {
    const oldAuth = basicAuth('demo-service', a.clientSecret);
    expect((await postToken(issuerB, { grant_type: 'client_credentials' }, oldAuth)).status).toBe(200); // B has it cached

    const newSecret = 'rotated-secret-for-two-nodes-test-0123456789';
    const stores = a.running.storage.modelStores('demo');
    const stored = await stores.durable.find('Client', 'demo-service');
    expect(stored).toBeDefined();
    await stores.durable.upsert('Client', 'demo-service', { ...stored, client_secret: hashClientSecret(newSecret) });

    const refused = await within(PUBSUB_BOUND_MS, async () => (await postToken(issuerB, { grant_type: 'client_credentials' }, oldAuth)).status === 401);
    expect(refused).toBe(true);
    const fresh = await postToken(issuerB, { grant_type: 'client_credentials' }, basicAuth('demo-service', newSecret));
    expect(fresh.status).toBe(200);

    // Put the demo secret back for the other tests.
    await stores.durable.upsert('Client', 'demo-service', { ...stored });
    expect(await within(PUBSUB_BOUND_MS, async () => (await postToken(issuerB, { grant_type: 'client_credentials' }, oldAuth)).status === 200)).toBe(true);
  });

  it('a client updated and then deleted through RFC 7592 on node A is seen updated, then refused, on node B', async () => {
    const registered = await fetch(`${issuerA}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'Two-node agent',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      }),
    });
    const created = (await registered.json()) as Record<string, unknown>;
    expect(registered.status, JSON.stringify(created)).toBe(201);
    const clientId = String(created.client_id);
    const auth = basicAuth(clientId, String(created.client_secret));
    const uriAt = (issuer: string) => `${issuer}/reg/${encodeURIComponent(clientId)}`;
    const bearer = (token: unknown) => ({ authorization: `Bearer ${String(token)}` });

    expect((await postToken(issuerB, { grant_type: 'client_credentials' }, auth)).status).toBe(200);
    const readAtB = await fetch(uriAt(issuerB), { headers: bearer(created.registration_access_token) });
    expect(((await readAtB.json()) as Record<string, unknown>).client_name).toBe('Two-node agent');

    const update = await fetch(uriAt(issuerA), {
      method: 'PUT',
      headers: { ...bearer(created.registration_access_token), 'content-type': 'application/json' },
      body: JSON.stringify({
        client_id: clientId,
        client_name: 'Renamed two-node agent',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      }),
    });
    const updated = (await update.json()) as Record<string, unknown>;
    expect(update.status, JSON.stringify(updated)).toBe(200);
    const renamedAtB = await within(PUBSUB_BOUND_MS, async () => {
      const read = await fetch(uriAt(issuerB), { headers: bearer(updated.registration_access_token) });
      return read.status === 200 && ((await read.json()) as Record<string, unknown>).client_name === 'Renamed two-node agent';
    });
    expect(renamedAtB).toBe(true);

    const removed = await fetch(uriAt(issuerA), { method: 'DELETE', headers: bearer(updated.registration_access_token) });
    expect(removed.status).toBe(204);
    const refusedAtB = await within(PUBSUB_BOUND_MS, async () => {
      const attempt = await postToken(issuerB, { grant_type: 'client_credentials' }, auth);
      return attempt.status === 401 && attempt.body.error === 'invalid_client';
    });
    expect(refusedAtB).toBe(true);
  });

  it('a key rotated and a tenant setting changed on node A reach node B within the tenant bound', async () => {
    const jwksKids = async (issuer: string) =>
      ((await (await fetch(`${issuer}/jwks`)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
    const scopesOf = async (issuer: string) =>
      ((await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as { scopes_supported: string[] }).scopes_supported;
    // B has the tenant loaded and cached before the change.
    expect((await jwksKids(issuerB)).length).toBeGreaterThan(0);
    expect(await scopesOf(issuerB)).not.toContain('reports:export');

    const rotation = await a.running.keyring.rotate('demo', 'ES256');
    const record = await a.running.storage.tenants.get('demo');
    const settings = record?.settings as { scopes?: string[] } | undefined;
    await a.running.storage.tenants.update('demo', { settings: { ...settings, scopes: [...(settings?.scopes ?? []), 'reports:export'] } });
    a.running.tenants.invalidate('demo');
    // A serves both at once; B within the bound.
    expect(await jwksKids(issuerA)).toContain(rotation.kid);
    expect(await scopesOf(issuerA)).toContain('reports:export');
    const [keyOnB, scopeOnB] = await Promise.all([
      within(TENANT_BOUND_MS, async () => (await jwksKids(issuerB)).includes(rotation.kid)),
      within(TENANT_BOUND_MS, async () => (await scopesOf(issuerB)).includes('reports:export')),
    ]);
    expect(keyOnB).toBe(true);
    expect(scopeOnB).toBe(true);
  }, 30_000);

  it('token events journaled on both nodes reach the audit chain once each, whichever node moves them', async () => {
    const db = mongo.db(a.env.MONGODB_DATABASE);
    const issuedEvents = async () => (await db.collection<AuditLinkDocument>(AUDIT_COLLECTION).find({ tenant: 'demo' }).toArray())
      .flatMap((link) => link.events)
      .filter((event) => event.type === 'token_issued');
    await a.running.flushAudit();
    await b.running.flushAudit();
    const before = (await issuedEvents()).length;
    const auth = basicAuth('demo-service', a.clientSecret);
    const form = { grant_type: 'client_credentials', scope: 'notes:read', resource: 'http://localhost:3001/mcp' };
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => postToken(i % 2 === 0 ? issuerA : issuerB, form, auth)));
    expect(answers.map((answer) => answer.status)).toEqual(answers.map(() => 200));
    // Both movers run on their own meanwhile; flushing both leaves nothing in the journal.
    await Promise.all([a.running.flushAudit(), b.running.flushAudit()]);
    const events = await issuedEvents();
    expect(events.length - before).toBe(40);
    const journalIds = events.map((event) => event.journalId).filter((id): id is string => typeof id === 'string');
    expect(new Set(journalIds).size).toBe(journalIds.length);
    expect(await verifyAuditChain(db, 'demo')).toMatchObject({ ok: true });
  }, 30_000);
});
