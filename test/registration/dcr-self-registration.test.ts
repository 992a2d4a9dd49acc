import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepUnusedClients } from '../../src/registration/abuse/unused-clients.ts';
import { startTestCastellan, STORAGE_KINDS, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, postToken, runCodeFlow } from '../support/oauth.ts';

/**
 * The abuse limits and books of self-registered clients (issue 5, item 3, and deletion of
 * item 2), end to end through HTTP on every store: rate limit, maximum, idempotent
 * re-registration, hashed secrets, deletion that revokes, and the sweeper of unused clients.
 */

const LOOPBACK = 'http://127.0.0.1:41234/callback';
const OPAQUE_RESOURCE = 'http://localhost:3002/api';
const DAY_MS = 86_400_000;

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function answer(response: Response): Promise<Answer> {
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function register(issuer: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return answer(await fetch(`${issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  }));
}

/** RFC 7592: read, update or delete a client with its registration access token. */
async function manage(created: Record<string, unknown>, method: 'GET' | 'PUT' | 'DELETE', body?: unknown): Promise<Answer> {
  return answer(await fetch(String(created.registration_client_uri), {
    method,
    headers: {
      authorization: `Bearer ${String(created.registration_access_token)}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  }));
}

const publicClient = {
  client_name: 'Notes agent',
  redirect_uris: [LOOPBACK, 'http://[::1]:41234/callback'],
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code', 'refresh_token'],
  software_id: 'notes-agent',
};

const serviceClient = {
  client_name: 'Reports service',
  grant_types: ['client_credentials'],
  token_endpoint_auth_method: 'client_secret_basic',
};

function clientCredentials(issuer: string, authorization: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return postToken(issuer, { grant_type: 'client_credentials' }, authorization);
}

describe.each(STORAGE_KINDS)('self-registered clients on the %s store', (kind) => {
  let castellan: TestCastellan;
  const issuerOf = (tenant: string): string => `${castellan.baseUrl}/t/${tenant}`;
  const abuse = () => castellan.running.storage.registrationAbuse;
  const durable = (tenant: string) => castellan.running.storage.modelStores(tenant).durable;

  beforeAll(async () => {
    castellan = await startTestCastellan(kind, `dcr_${kind}`);
    const { tenants } = castellan.running.storage;
    const open = (limits: Record<string, number>) => ({ registration: { mode: 'open', limits } });
    await tenants.create({ id: 'open', displayName: 'Open', settings: open({ perIpPerHour: 1000 }) });
    await tenants.create({ id: 'slow', displayName: 'Slow', settings: open({ perIpPerHour: 3 }) });
    await tenants.create({ id: 'small', displayName: 'Small', settings: open({ perIpPerHour: 1000, maxClients: 3 }) });
  });
  afterAll(async () => castellan?.stop());

  it('answers registrations over the hourly limit per address with 429, Retry-After and OAuth error JSON', async () => {
    const slow = issuerOf('slow');
    expect((await register(slow, publicClient)).status).toBe(201);
    expect((await register(slow, serviceClient)).status).toBe(201);
    // A refused registration counts too: every attempt costs a check.
    expect((await register(slow, { redirect_uris: ['http://evil.example/cb'] })).status).toBe(400);
    // X-Forwarded-For is not trusted here (CASTELLAN_TRUST_PROXY is off): no way around the limit.
    const limited = await register(slow, publicClient, { 'x-forwarded-for': '198.51.100.9', origin: 'http://localhost:6274' });
    expect(limited.status).toBe(429);
    expect(limited.body).toEqual({ error: 'too_many_requests', error_description: expect.stringContaining('3 per hour') });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(3500);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(3600);
    expect(limited.headers.get('access-control-allow-origin')).toBe('*');
    // Per tenant: another tenant's registrations are counted apart.
    expect((await register(issuerOf('open'), publicClient)).status).toBe(201);
  });

  it('refuses registrations beyond the tenant\'s maximum with 403 access_denied, never 500, also when racing; a deletion frees a place', async () => {
    const small = issuerOf('small');
    const before = await abuse().clientCount('small');
    const attempts = await Promise.all(
      Array.from({ length: 8 }, (_, i) => register(small, { ...serviceClient, client_name: `Service ${i}` })),
    );
    const statuses = attempts.map((a) => a.status).sort();
    expect(statuses).toEqual([201, 201, 201, 403, 403, 403, 403, 403].slice(before));
    const refused = attempts.find((a) => a.status === 403);
    expect(refused?.body).toEqual({ error: 'access_denied', error_description: expect.stringContaining('maximum of 3') });
    expect(await abuse().clientCount('small')).toBe(3);

    // Refused metadata takes no place, and a client's re-registration needs none.
    expect((await register(small, { redirect_uris: ['http://evil.example/cb'] })).status).toBe(400);
    expect(await abuse().clientCount('small')).toBe(3);

    const created = attempts.find((a) => a.status === 201)?.body ?? {};
    expect((await manage(created, 'DELETE')).status).toBe(204);
    expect(await abuse().clientCount('small')).toBe(2);
    expect((await register(small, serviceClient)).status).toBe(201);
  });

  it('gives a public client registering again with identical metadata its registration back, without a management token', async () => {
    const open = issuerOf('open');
    const first = await register(open, { ...publicClient, client_name: 'Idempotent agent' });
    expect(first.status).toBe(201);
    const count = await abuse().clientCount('open');

    // Same metadata in another order, with an unknown member (ignored, RFC 7591 §2).
    const again = await register(open, {
      x_vendor_extension: 'ignored',
      redirect_uris: [...publicClient.redirect_uris].reverse(),
      software_id: 'notes-agent',
      grant_types: ['refresh_token', 'authorization_code'],
      token_endpoint_auth_method: 'none',
      client_name: 'Idempotent agent',
    });
    expect(again.status).toBe(201);
    expect(again.headers.get('cache-control')).toBe('no-store');
    expect(again.body).toMatchObject({
      client_id: first.body.client_id,
      client_id_issued_at: first.body.client_id_issued_at,
      client_name: 'Idempotent agent',
    });
    // Anyone can copy a public client's metadata: a re-registration must not hand out the
    // power to change or delete a client others share.
    expect(again.body).not.toHaveProperty('registration_access_token');
    expect(again.body).not.toHaveProperty('client_secret');
    expect(await abuse().clientCount('open')).toBe(count);

    // The original registrant's token still manages the client.
    const read = await manage(first.body, 'GET');
    expect(read.status).toBe(200);
    expect(read.body.client_id).toBe(first.body.client_id);

    const other = await register(open, { ...publicClient, client_name: 'Another agent' });
    expect(other.body.client_id).not.toBe(first.body.client_id);
  });

  it('ends 10 identical concurrent registrations of a public client with one client', async () => {
    const open = issuerOf('open');
    const count = await abuse().clientCount('open');
    const metadata = { ...publicClient, client_name: 'Racing agent' };
    const results = await Promise.all(Array.from({ length: 10 }, () => register(open, metadata)));
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(201));
    expect(new Set(results.map((r) => r.body.client_id)).size).toBe(1);
    expect(await abuse().clientCount('open')).toBe(count + 1);
  });

  it('registers a confidential client anew every time: its secret is shown once', async () => {
    const open = issuerOf('open');
    const first = await register(open, serviceClient);
    const second = await register(open, serviceClient);
    expect(first.body.client_secret).toEqual(expect.any(String));
    expect(second.body.client_secret).toEqual(expect.any(String));
    expect(second.body.client_id).not.toBe(first.body.client_id);
  });

  it('no longer answers re-registrations with a client whose metadata was updated, or which was deleted', async () => {
    const open = issuerOf('open');
    const metadata = { ...publicClient, client_name: 'Changing agent' };
    const first = await register(open, metadata);
    const updated = await manage(first.body, 'PUT', { ...metadata, client_id: first.body.client_id, client_name: 'Changed agent' });
    expect(updated.status).toBe(200);

    const afterUpdate = await register(open, metadata);
    expect(afterUpdate.status).toBe(201);
    expect(afterUpdate.body.client_id).not.toBe(first.body.client_id);
    expect(afterUpdate.body.client_name).toBe('Changing agent');

    expect((await manage(afterUpdate.body, 'DELETE')).status).toBe(204);
    const afterDelete = await register(open, metadata);
    expect(afterDelete.status).toBe(201);
    expect(afterDelete.body.client_id).not.toBe(afterUpdate.body.client_id);
  });

  it('stores client secrets hashed, authenticates with the plaintext, and never shows the hash', async () => {
    const open = issuerOf('open');
    const basic = await register(open, serviceClient);
    const post = await register(open, { ...serviceClient, token_endpoint_auth_method: 'client_secret_post' });
    const id = String(basic.body.client_id);
    const secret = String(basic.body.client_secret);
    expect(secret.length).toBeGreaterThanOrEqual(86); // 64 random bytes, base64url

    const stored = await durable('open').find('Client', id);
    expect(stored?.client_secret).toMatch(/^\$sha256\$[\w-]{43}$/);
    expect(JSON.stringify(stored)).not.toContain(secret);

    expect((await clientCredentials(open, basicAuth(id, secret))).status).toBe(200);
    const wrong = await clientCredentials(open, basicAuth(id, `${secret}x`));
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');
    // Presenting the stored digest itself authenticates nobody.
    expect((await clientCredentials(open, basicAuth(id, String(stored?.client_secret)))).status).toBe(401);
    const viaPost = await postToken(open, {
      grant_type: 'client_credentials',
      client_id: String(post.body.client_id),
      client_secret: String(post.body.client_secret),
    });
    expect(viaPost.status, JSON.stringify(viaPost.body)).toBe(200);

    // RFC 7592: reads and updates answer without the secret; an update may echo it (§2.2).
    const read = await manage(basic.body, 'GET');
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ client_id: id, client_name: 'Reports service' });
    expect(read.body).not.toHaveProperty('client_secret');
    const badEcho = await manage(basic.body, 'PUT', { ...serviceClient, client_id: id, client_secret: 'not-the-secret' });
    expect(badEcho.status).toBe(400);
    expect(badEcho.body.error).toBe('invalid_request');
    const updated = await manage(basic.body, 'PUT', { ...serviceClient, client_id: id, client_secret: secret, client_name: 'Renamed service' });
    expect(updated.status, JSON.stringify(updated.body)).toBe(200);
    expect(updated.body.client_name).toBe('Renamed service');
    expect(updated.body).not.toHaveProperty('client_secret');
    expect((await clientCredentials(open, basicAuth(id, secret))).status).toBe(200);
  });

  it('keeps the seeded demo-service client working, its secret stored in plaintext or hashed', async () => {
    const token = await clientCredentials(castellan.issuer, basicAuth('demo-service', castellan.clientSecret));
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    expect((await clientCredentials(castellan.issuer, basicAuth('demo-service', 'wrong'))).status).toBe(401);
  });

  it('revokes a deleted client\'s tokens and grants: introspection says inactive, never 500, and its refresh token is dead', async () => {
    const created = await register(castellan.issuer, { ...publicClient, client_name: 'Doomed agent', scope: 'openid offline_access reports:read' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const clientId = String(created.body.client_id);
    const flow = await runCodeFlow({
      issuer: castellan.issuer,
      clientId,
      redirectUri: LOOPBACK,
      scope: 'openid offline_access reports:read',
      resource: OPAQUE_RESOURCE,
      login: 'demo',
      password: castellan.userPassword,
      extra: { prompt: 'consent' },
    });
    const tokens = await postToken(castellan.issuer, {
      grant_type: 'authorization_code',
      client_id: clientId,
      code: flow.code,
      redirect_uri: LOOPBACK,
      code_verifier: flow.verifier,
      resource: OPAQUE_RESOURCE,
    });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    const accessToken = String(tokens.body.access_token);
    const refreshToken = String(tokens.body.refresh_token);

    const introspect = async (token: string): Promise<Answer> => answer(await fetch(`${castellan.issuer}/token/introspection`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basicAuth('demo-service', castellan.clientSecret),
      },
      body: new URLSearchParams({ token }).toString(),
    }));
    expect((await introspect(accessToken)).body).toMatchObject({ active: true, client_id: clientId, sub: expect.any(String) });

    expect((await manage(created.body, 'DELETE')).status).toBe(204);

    for (const token of [accessToken, refreshToken]) {
      const after = await introspect(token);
      expect(after.status).toBe(200);
      expect(after.body).toEqual({ active: false });
    }
    const refreshed = await postToken(castellan.issuer, { grant_type: 'refresh_token', client_id: clientId, refresh_token: refreshToken });
    expect(refreshed.status).toBeGreaterThanOrEqual(400);
    expect(refreshed.status).toBeLessThan(500);
    expect(await durable('demo').find('Client', clientId)).toBeUndefined();
    expect(await abuse().lastUse('demo', clientId)).toBeUndefined();
  });

  it('sweeps self-registered clients unused for unusedClientDays with their tokens, and never the seeded clients', async () => {
    const open = issuerOf('open');
    const idle = await register(open, { ...serviceClient, client_name: 'Idle service' });
    const busy = await register(open, { ...serviceClient, client_name: 'Busy service' });
    const idleId = String(idle.body.client_id);
    const busyId = String(busy.body.client_id);
    const idleToken = await clientCredentials(open, basicAuth(idleId, String(idle.body.client_secret)));
    const registeredAt = (await abuse().lastUse('open', busyId)) ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await clientCredentials(open, basicAuth(busyId, String(busy.body.client_secret)))).status).toBe(200);
    // A successful token request moves the client's last use (recorded without delaying the answer).
    await expect.poll(async () => (await abuse().lastUse('open', busyId)) ?? 0).toBeGreaterThan(registeredAt);

    // 31 days later, the busy client having been used on day 20.
    const later = Date.now() + 31 * DAY_MS;
    await abuse().recordUse('open', busyId, Date.now() + 20 * DAY_MS);
    const deps = {
      abuse: abuse(),
      modelStores: (tenant: string) => castellan.running.storage.modelStores(tenant),
      unusedClientDays: async (tenant: string) => (await castellan.running.tenants.get(tenant)).settings.registration.limits.unusedClientDays,
      now: () => later,
    };
    const swept = await sweepUnusedClients(deps);
    expect(swept).toBeGreaterThan(0);

    expect(await durable('open').find('Client', idleId)).toBeUndefined();
    expect(await abuse().lastUse('open', idleId)).toBeUndefined();
    expect(await durable('open').find('ClientCredentials', String(idleToken.body.access_token))).toBeUndefined();
    expect(await durable('open').find('Client', busyId)).toBeDefined();
    expect(await durable('demo').find('Client', 'demo-agent')).toBeDefined();
    expect(await durable('demo').find('Client', 'demo-service')).toBeDefined();
    expect((await clientCredentials(open, basicAuth(busyId, String(busy.body.client_secret)))).status).toBe(200);
    expect(await sweepUnusedClients(deps)).toBe(0);
  });
});
