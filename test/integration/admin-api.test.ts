import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminRoutes, type AdminServices } from '../../src/admin/api/admin-routes.ts';
import type { AdminActor } from '../../src/admin/services/admin-actor.ts';
import { adminResourceUri, createAdminClient, systemTenantSettings } from '../../src/admin/services/system-tenant.ts';
import { createMemoryAuditSink } from '../../src/observability/audit.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { runCli } from '../support/cli.ts';
import { basicAuth, introspect, postToken } from '../support/oauth.ts';

const SYSTEM = 'system';
const FILES_API = 'https://files.example/api';
const OTHER_API = 'https://other.example/api';

interface Answer {
  status: number;
  type: string;
  headers: Headers;
  body: Record<string, unknown>;
}

describe('admin API (/admin/v1) on FerretDB + Redis', () => {
  let castellan: TestCastellan;
  let admin: string;
  let readOnly: string;
  let adminClientId: string;
  /** Every secret and password this test handles: none may appear in an audit event. */
  const secrets: string[] = [];

  const api = (path: string) => `${castellan.baseUrl}/admin/v1${path}`;

  async function call(method: string, path: string, options: { token?: string | undefined; body?: unknown; raw?: string; contentType?: string } = {}): Promise<Answer> {
    const headers: Record<string, string> = {};
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined;
    if (options.raw !== undefined || options.body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json';
      body = options.raw ?? JSON.stringify(options.body);
    }
    const response = await fetch(api(path), { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await response.text();
    return { status: response.status, type: response.headers.get('content-type') ?? '', headers: response.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  const as = (token: string) => ({
    get: (path: string) => call('GET', path, { token }),
    post: (path: string, body?: unknown) => call('POST', path, { token, body }),
    put: (path: string, body: unknown) => call('PUT', path, { token, body }),
    patch: (path: string, body: unknown) => call('PATCH', path, { token, body }),
    delete: (path: string) => call('DELETE', path, { token }),
  });

  async function systemToken(clientId: string, secret: string, resource = adminResourceUri(castellan.baseUrl), scope = 'admin:read admin:write'): Promise<string> {
    const { status, body } = await postToken(`${castellan.baseUrl}/t/${SYSTEM}`, { grant_type: 'client_credentials', resource, scope }, basicAuth(clientId, secret));
    expect(status, JSON.stringify(body)).toBe(200);
    return String(body.access_token);
  }

  function expectProblem(answer: Answer, status: number): void {
    expect(answer.status, JSON.stringify(answer.body)).toBe(status);
    expect(answer.type).toContain('application/problem+json');
    expect(answer.body).toMatchObject({ type: 'about:blank', status, title: expect.any(String), detail: expect.any(String) });
    expect(JSON.stringify(answer.body)).not.toMatch(/at .*\.ts:\d+/);
  }

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'admin_api');
    // What `castellan init` does: the system tenant exists (start-up made it); add admin clients.
    const bootstrap = { storage: castellan.running.storage, tenants: castellan.running.tenants, audit: createMemoryAuditSink() };
    const operator: AdminActor = { via: 'cli', subject: 'test-operator' };
    const full = await createAdminClient(bootstrap, { tenantId: SYSTEM, clientId: 'ops' }, operator);
    const reader = await createAdminClient(bootstrap, { tenantId: SYSTEM, clientId: 'auditor', scopes: ['admin:read'] }, operator);
    adminClientId = full.client.client_id;
    secrets.push(String(full.clientSecret), String(reader.clientSecret));
    admin = await systemToken('ops', String(full.clientSecret));
    readOnly = await systemToken('auditor', String(reader.clientSecret), undefined, 'admin:read');
  });
  afterAll(async () => castellan?.stop());

  describe('the OpenAPI document', () => {
    // The route table itself, built over services that are never called.
    const routes = adminRoutes(new Proxy({}, { get: () => ({}) }) as AdminServices);

    it('is valid OpenAPI 3.1 JSON listing exactly the routes the router serves', async () => {
      const response = await fetch(api('/openapi.json'));
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('application/json');
      const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, { summary?: string; security?: unknown; responses?: unknown }>> };
      expect(document.openapi).toBe('3.1.0');
      const documented = Object.entries(document.paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`));
      const served = routes.map((route) => `${route.method} ${route.path}`);
      expect(documented.sort()).toEqual([...served].sort());
      for (const route of routes) {
        const op = document.paths[route.path]?.[route.method.toLowerCase()];
        expect(op?.summary, `${route.method} ${route.path}`).toBeTruthy();
        expect(op?.security).toEqual([{ adminToken: [route.scope] }]);
      }
    });

    it('every documented route is served: without a token it asks for one (401), an unknown path is 404', async () => {
      for (const route of routes) {
        const path = route.path.replaceAll('{tenant}', 'demo').replace(/\{\w+\}/g, 'x');
        const answer = await call(route.method, path, route.body ? { body: {} } : {});
        expectProblem(answer, 401);
        expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer realm="castellan-admin"$/);
      }
      expectProblem(await call('GET', '/tenants/demo/nothing-here', { token: admin }), 404);
      expectProblem(await call('PATCH', '/tenants/demo/keys', { token: admin, body: {} }), 405);
    });
  });

  describe('who may call it', () => {
    it('refuses a malformed or forged token with 401 invalid_token', async () => {
      for (const token of ['not-a-jwt', `${admin.slice(0, -4)}AAAA`]) {
        const answer = await as(token).get('/tenants');
        expectProblem(answer, 401);
        expect(answer.headers.get('www-authenticate')).toContain('error="invalid_token"');
      }
      expectProblem(await call('GET', '/tenants', { token: undefined }), 401);
      const basic = await fetch(api('/tenants'), { headers: { authorization: basicAuth('ops', secrets[0] ?? '') } });
      expect(basic.status).toBe(401);
    });

    it('refuses a token of another tenant (the demo tenant\'s service client)', async () => {
      const { status, body } = await postToken(castellan.issuer, { grant_type: 'client_credentials', resource: 'http://localhost:3001/mcp', scope: 'notes:read' }, basicAuth('demo-service', castellan.clientSecret));
      expect(status).toBe(200);
      expectProblem(await as(String(body.access_token)).get('/tenants'), 401);
    });

    it('refuses a system-tenant token for another audience', async () => {
      // A second resource of the system tenant, added through the API itself.
      const settings = systemTenantSettings(castellan.baseUrl);
      const resources = [...(settings.resources ?? []), { uri: OTHER_API, scopes: ['admin:read', 'admin:write'], accessTokenFormat: 'jwt' as const }];
      expect((await as(admin).patch(`/tenants/${SYSTEM}`, { settings: { ...settings, resources } })).status).toBe(200);
      const other = await systemToken('ops', secrets[0] ?? '', OTHER_API);
      const answer = await as(other).get('/tenants');
      expectProblem(answer, 401);
      expect(answer.body.detail).toContain('aud');
    });

    it('lets a read-only token read and refuses its writes with 403 insufficient_scope', async () => {
      expect((await as(readOnly).get('/tenants')).status).toBe(200);
      for (const [method, path] of [['POST', '/tenants'], ['POST', '/tenants/demo/keys/rotate'], ['DELETE', '/tenants/demo/clients/demo-agent'], ['PATCH', '/tenants/demo/policies']] as const) {
        const answer = await call(method, path, { token: readOnly, body: {} });
        expectProblem(answer, 403);
        expect(answer.body.error).toBe('insufficient_scope');
        expect(answer.headers.get('www-authenticate')).toContain('error="insufficient_scope", scope="admin:write"');
      }
      // Nothing was done: the demo agent is still there.
      expect((await as(readOnly).get('/tenants/demo/clients/demo-agent')).status).toBe(200);
    });
  });

  describe('tenants, clients, users, grants, policies, keys, audit', () => {
    let serviceSecret = '';
    let userId = '';

    it('creates, reads and updates a tenant; refuses bad input with 400/409/415, never 500', async () => {
      const created = await as(admin).post('/tenants', {
        id: 'acme', displayName: 'Acme', settings: { scopes: ['files:read'], resources: [{ uri: FILES_API, scopes: ['files:read'], accessTokenFormat: 'opaque' }] },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ id: 'acme', displayName: 'Acme', disabled: false });
      expectProblem(await as(admin).post('/tenants', { id: 'acme', displayName: 'Again' }), 409);
      expectProblem(await as(admin).post('/tenants', { id: 'Not A Slug', displayName: 'x' }), 400);
      expectProblem(await as(admin).post('/tenants', { id: 'ok', displayName: 'x', unknown: 1 }), 400);
      expectProblem(await as(admin).post('/tenants', { id: 'bad-settings', displayName: 'x', settings: { ttl: { accessToken: -1 } } }), 400);
      expectProblem(await call('POST', '/tenants', { token: admin, raw: '{not json' }), 400);
      expectProblem(await call('POST', '/tenants', { token: admin, raw: '[1,2]' }), 400);
      expectProblem(await call('POST', '/tenants', { token: admin, raw: 'id=x', contentType: 'application/x-www-form-urlencoded' }), 415);
      expectProblem(await as(admin).get('/tenants/bad-settings'), 404);

      const list = await as(admin).get('/tenants');
      expect((list.body.tenants as { id: string }[]).map((t) => t.id)).toEqual(expect.arrayContaining(['acme', 'demo', SYSTEM]));
      expect((await as(admin).get('/tenants/acme')).body).toMatchObject({ id: 'acme', settings: { scopes: ['files:read'] } });
      expect((await as(admin).patch('/tenants/acme', { displayName: 'Acme Corp' })).body).toMatchObject({ displayName: 'Acme Corp' });
      expectProblem(await as(admin).patch('/tenants/acme', {}), 400);
      expectProblem(await as(admin).get('/tenants/nope'), 404);
      expectProblem(await as(admin).get('/tenants/%E0%A4%A'), 400);
    });

    it('creates a confidential client whose secret is shown once and works at the token endpoint', async () => {
      const created = await as(admin).post('/tenants/acme/clients', {
        client_id: 'files-sync', client_name: 'Files sync', grant_types: ['client_credentials'], response_types: [], token_endpoint_auth_method: 'client_secret_basic', scope: 'files:read',
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ client_id: 'files-sync', has_secret: true, client_name: 'Files sync' });
      serviceSecret = String(created.body.client_secret);
      secrets.push(serviceSecret);
      expect(serviceSecret.length).toBeGreaterThanOrEqual(43);

      const token = await postToken(`${castellan.baseUrl}/t/acme`, { grant_type: 'client_credentials', resource: FILES_API, scope: 'files:read' }, basicAuth('files-sync', serviceSecret));
      expect(token.status, JSON.stringify(token.body)).toBe(200);

      const read = await as(admin).get('/tenants/acme/clients/files-sync');
      expect(read.body).toMatchObject({ client_id: 'files-sync', has_secret: true });
      expect(read.body).not.toHaveProperty('client_secret');
      expect(((await as(admin).get('/tenants/acme/clients')).body.clients as { client_id: string }[]).map((c) => c.client_id)).toEqual(['files-sync']);
      // Listings come in pages: a full page says `next`, the page after it may be empty.
      const page = (await as(admin).get('/tenants/acme/clients?limit=1')).body;
      expect(page).toMatchObject({ clients: [expect.objectContaining({ client_id: 'files-sync' })], next: 'files-sync' });
      expect((await as(admin).get('/tenants/acme/clients?after=files-sync')).body).toEqual({ clients: [] });
      expectProblem(await as(admin).get('/tenants/acme/clients?limit=0'), 400);
      expectProblem(await as(admin).get('/tenants/acme/users?limit=abc'), 400);

      const replaced = await as(admin).put('/tenants/acme/clients/files-sync', { client_name: 'Files sync v2', grant_types: ['client_credentials'], response_types: [], scope: 'files:read' });
      expect(replaced.status, JSON.stringify(replaced.body)).toBe(200);
      expect(replaced.body).toMatchObject({ client_name: 'Files sync v2' });
      expect(replaced.body).not.toHaveProperty('client_secret');
      const again = await postToken(`${castellan.baseUrl}/t/acme`, { grant_type: 'client_credentials', resource: FILES_API, scope: 'files:read' }, basicAuth('files-sync', serviceSecret));
      expect(again.status).toBe(200);

      // A new secret: shown once, the old one refused from now on.
      const rotated = await as(admin).post('/tenants/acme/clients/files-sync/secret');
      expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
      const oldSecret = serviceSecret;
      serviceSecret = String(rotated.body.client_secret);
      secrets.push(serviceSecret);
      expect(serviceSecret).not.toBe(oldSecret);
      const refused = await postToken(`${castellan.baseUrl}/t/acme`, { grant_type: 'client_credentials', resource: FILES_API, scope: 'files:read' }, basicAuth('files-sync', oldSecret));
      expect(refused.status).toBe(401);
      const renewed = await postToken(`${castellan.baseUrl}/t/acme`, { grant_type: 'client_credentials', resource: FILES_API, scope: 'files:read' }, basicAuth('files-sync', serviceSecret));
      expect(renewed.status).toBe(200);
      expectProblem(await as(admin).post('/tenants/demo/clients/demo-agent/secret'), 400);

      expectProblem(await as(admin).post('/tenants/acme/clients', { client_id: 'files-sync', grant_types: ['client_credentials'], response_types: [] }), 409);
      expectProblem(await as(admin).post('/tenants/acme/clients', { redirect_uris: ['http://evil.example/cb'] }), 400);
      expectProblem(await as(admin).post('/tenants/acme/clients', { grant_types: ['client_credentials'], response_types: [], scope: 'files:write' }), 400);
      expectProblem(await as(admin).get('/tenants/acme/clients/nobody'), 404);
    });

    it('creates and lists users; the password shows nowhere', async () => {
      const password = 'correct horse battery staple';
      secrets.push(password);
      const created = await as(admin).post('/tenants/acme/users', { login: 'alice', password, email: 'alice@example.com', name: 'Alice' });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ login: 'alice', claims: { email: 'alice@example.com', name: 'Alice' }, totpEnabled: false });
      expect(JSON.stringify(created.body)).not.toContain(password);
      userId = String(created.body.id);
      expect(((await as(admin).get('/tenants/acme/users')).body.users as { id: string }[]).map((u) => u.id)).toEqual([userId]);
      expect((await as(admin).get(`/tenants/acme/users/${userId}`)).body).toMatchObject({ id: userId, login: 'alice' });
      expectProblem(await as(admin).post('/tenants/acme/users', { login: 'ALICE', password: 'another long password' }), 409);
      expectProblem(await as(admin).post('/tenants/acme/users', { login: 'bob' }), 400);
      expectProblem(await as(admin).post('/tenants/acme/users', { login: 'bob', password: 'short' }), 400);
      expect(await castellan.running.storage.users.verifyPassword('acme', 'alice', password)).toMatchObject({ id: userId });
    });

    it('lists and revokes grants by user and by client (their tokens stop working)', async () => {
      const stores = castellan.running.storage.modelStores('acme');
      const now = Math.floor(Date.now() / 1000);
      // A consent of alice to files-sync, and an opaque token under it.
      await stores.durable.upsert('Grant', 'grant-alice', { jti: 'grant-alice', kind: 'Grant', accountId: userId, clientId: 'files-sync', openid: { scope: 'openid' }, resources: { [FILES_API]: 'files:read' }, iat: now, exp: now + 3600 }, 3600);
      await stores.durable.upsert('AccessToken', 'token-alice', { jti: 'token-alice', kind: 'AccessToken', accountId: userId, clientId: 'files-sync', grantId: 'grant-alice', scope: 'files:read', aud: FILES_API, iat: now, exp: now + 3600 }, 3600);
      const byUser = await as(admin).get(`/tenants/acme/grants?userId=${encodeURIComponent(userId)}`);
      expect(byUser.body.grants).toEqual([expect.objectContaining({ id: 'grant-alice', userId, clientId: 'files-sync', scope: 'openid', resources: { [FILES_API]: 'files:read' } })]);
      expect(((await as(admin).get('/tenants/acme/grants?clientId=files-sync')).body.grants as unknown[]).length).toBe(1);
      expectProblem(await as(admin).get('/tenants/acme/grants'), 400);
      expectProblem(await as(admin).get(`/tenants/acme/grants?clientId=files-sync&userId=${userId}`), 400);

      expect((await as(admin).post('/tenants/acme/grants/revoke', { userId })).body).toEqual({ revoked: 1 });
      expect(await stores.durable.find('AccessToken', 'token-alice')).toBeUndefined();
      expect((await as(admin).get(`/tenants/acme/grants?userId=${encodeURIComponent(userId)}`)).body.grants).toEqual([]);

      // By client: its client-credentials token is refused at introspection afterwards.
      const token = await postToken(`${castellan.baseUrl}/t/acme`, { grant_type: 'client_credentials', resource: FILES_API, scope: 'files:read' }, basicAuth('files-sync', serviceSecret));
      const auth = basicAuth('files-sync', serviceSecret);
      expect(await introspect(`${castellan.baseUrl}/t/acme`, auth, token.body.access_token)).toMatchObject({ active: true });
      expect((await as(admin).post('/tenants/acme/grants/revoke', { clientId: 'files-sync' })).status).toBe(200);
      expect(await introspect(`${castellan.baseUrl}/t/acme`, auth, token.body.access_token)).toMatchObject({ active: false });
    });

    it('reads and updates policy settings, checked whole', async () => {
      const read = await as(admin).get('/tenants/acme/policies');
      expect(read.body).toMatchObject({ registration: { mode: 'closed' }, deviceFlow: { enabled: false } });
      const updated = await as(admin).patch('/tenants/acme/policies', { deviceFlow: { enabled: true, interval: 7 } });
      expect(updated.status, JSON.stringify(updated.body)).toBe(200);
      expect(updated.body).toMatchObject({ deviceFlow: { enabled: true, interval: 7 } });
      expect((await castellan.running.tenants.get('acme')).settings.deviceFlow).toMatchObject({ enabled: true, interval: 7 });
      // The rest of the settings stayed.
      expect((await as(admin).get('/tenants/acme')).body).toMatchObject({ settings: { scopes: ['files:read'] } });
      expectProblem(await as(admin).patch('/tenants/acme/policies', { deviceFlow: { interval: 0 } }), 400);
      expectProblem(await as(admin).patch('/tenants/acme/policies', { scopes: ['x'] }), 400);
    });

    it('lists, rotates and retires signing keys', async () => {
      const before = (await as(admin).get('/tenants/acme/keys')).body.keys as { kid: string; alg: string; state: string }[];
      const active = before.find((k) => k.alg === 'ES256' && k.state === 'active');
      expect(active).toBeDefined();
      const rotated = await as(admin).post('/tenants/acme/keys/rotate', { alg: 'ES256' });
      expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
      expect(rotated.body.rotated).toEqual([expect.objectContaining({ alg: 'ES256', previousKid: active?.kid })]);
      const after = (await as(admin).get('/tenants/acme/keys')).body.keys as { kid: string; state: string }[];
      expect(after.find((k) => k.kid === active?.kid)?.state).toBe('retired');
      expectProblem(await as(admin).post('/tenants/acme/keys/rotate', { alg: 'HS256' }), 400);
      const retired = await as(admin).post(`/tenants/acme/keys/${encodeURIComponent(String(active?.kid))}/retire`);
      expect(retired.status, JSON.stringify(retired.body)).toBe(200);
      expect(((await as(admin).get('/tenants/acme/keys')).body.keys as { kid: string }[]).map((k) => k.kid)).not.toContain(active?.kid);
      expectProblem(await as(admin).post('/tenants/acme/keys/no-such-kid/retire'), 404);
    });

    it('disabling a tenant makes it answer like an unknown one, and its tokens fail introspection', async () => {
      const issuer = `${castellan.baseUrl}/t/acme`;
      const auth = basicAuth('files-sync', serviceSecret);
      const token = await postToken(issuer, { grant_type: 'client_credentials', resource: FILES_API, scope: 'files:read' }, auth);
      expect(token.status).toBe(200);
      expect((await as(admin).post('/tenants/acme/disable')).body).toMatchObject({ disabled: true });
      expect((await fetch(`${issuer}/.well-known/openid-configuration`)).status).toBe(404);
      const refused = await fetch(`${issuer}/token/introspection`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth }, body: new URLSearchParams({ token: String(token.body.access_token) }).toString() });
      expect(refused.status).toBe(404);
      // Operators still see it.
      expect((await as(admin).get('/tenants/acme')).body).toMatchObject({ disabled: true });
      expect((await as(admin).post('/tenants/acme/enable')).body).toMatchObject({ disabled: false });
      expect(await introspect(issuer, auth, token.body.access_token)).toMatchObject({ active: true });
    });

    it('queries the audit events of a tenant by type and time, a page at a time', async () => {
      const all = await as(admin).get('/tenants/acme/audit-events?type=admin_tenant_created,admin_client_created,admin_client_updated');
      expect(all.status, JSON.stringify(all.body)).toBe(200);
      const events = all.body.events as { seq: number; at: string; event: Record<string, unknown> }[];
      expect(events.map((e) => e.event.type)).toEqual(['admin_tenant_created', 'admin_client_created', 'admin_client_updated']);
      expect(events[1]?.event).toMatchObject({ tenant: 'acme', clientId: 'files-sync', actor: { via: 'api', clientId: adminClientId } });

      const first = await as(admin).get('/tenants/acme/audit-events?limit=1');
      const page = first.body.events as { seq: number; index: number }[];
      expect(page).toHaveLength(1);
      expect(first.body.next).toBe(`${String(page[0]?.seq)}:${String(page[0]?.index)}`);
      const second = await as(admin).get(`/tenants/acme/audit-events?limit=1&after=${String(first.body.next)}`);
      const [following] = second.body.events as { seq: number; index: number }[];
      // The next event: later in the same link (group commit), or in a later link.
      const [a, b] = [page[0] ?? { seq: Infinity, index: 0 }, following ?? { seq: 0, index: 0 }];
      expect(b.seq > a.seq || (b.seq === a.seq && b.index > a.index), JSON.stringify({ first: a, second: b })).toBe(true);

      const future = new Date(Date.now() + 3_600_000).toISOString();
      expect((await as(admin).get(`/tenants/acme/audit-events?from=${encodeURIComponent(future)}`)).body.events).toEqual([]);
      const past = new Date(Date.now() - 3_600_000).toISOString();
      expect(((await as(admin).get(`/tenants/acme/audit-events?to=${encodeURIComponent(past)}`)).body.events as unknown[])).toEqual([]);
      expectProblem(await as(admin).get('/tenants/acme/audit-events?limit=0'), 400);
      expectProblem(await as(admin).get('/tenants/acme/audit-events?from=yesterday'), 400);
      expectProblem(await as(admin).get('/tenants/acme/audit-events?colour=red'), 400);
      expectProblem(await as(admin).get('/tenants/acme/audit-events?after=1.5'), 400);
    });

    it('deletes a user (grants first) and a client (with what was issued to it)', async () => {
      expect((await as(admin).delete(`/tenants/acme/users/${userId}`)).status).toBe(204);
      expectProblem(await as(admin).get(`/tenants/acme/users/${userId}`), 404);
      expect((await as(admin).delete('/tenants/acme/clients/files-sync')).status).toBe(204);
      expectProblem(await as(admin).get('/tenants/acme/clients/files-sync'), 404);
      const token = await postToken(`${castellan.baseUrl}/t/acme`, { grant_type: 'client_credentials', resource: FILES_API }, basicAuth('files-sync', serviceSecret));
      expect(token.status).toBe(401);
    });

    it('recorded an admin event with the actor for every change, and no secret anywhere in them', async () => {
      const adminEvents = castellan.audit.filter((e) => e.type.startsWith('admin_'));
      expect(new Set(adminEvents.map((e) => e.type))).toEqual(new Set([
        'admin_tenant_created', 'admin_tenant_updated', 'admin_client_created', 'admin_client_updated', 'admin_client_secret_rotated', 'admin_client_deleted',
        'admin_user_created', 'admin_user_deleted', 'admin_grants_revoked', 'admin_policy_updated', 'admin_tenant_disabled', 'admin_tenant_enabled',
      ]));
      for (const event of adminEvents.filter((e) => e.tenant !== SYSTEM)) {
        expect(event).toMatchObject({ outcome: 'success', actor: { via: 'api', clientId: adminClientId } });
      }
      expect(castellan.audit.filter((e) => e.type === 'key_rotated' && e.tenant === 'acme').length).toBeGreaterThanOrEqual(1);
      const everything = JSON.stringify(castellan.audit);
      for (const secret of secrets) expect(everything).not.toContain(secret);
      expect(everything).not.toContain('$argon2');
    });

    it('the operator\'s path: `castellan init` prints an admin client whose token opens the API', async () => {
      const init = await runCli(castellan.env, ['init']);
      expect(init.code, init.stderr).toBe(0);
      const clientId = /^client_id: (\S+)$/m.exec(init.stdout)?.[1];
      const secret = /^client_secret: (\S+)$/m.exec(init.stdout)?.[1];
      expect(clientId && secret).toBeTruthy();
      const token = await systemToken(String(clientId), String(secret));
      expect((await as(token).get(`/tenants/${SYSTEM}`)).body).toMatchObject({ id: SYSTEM, disabled: false });
    });

    it('refuses to lock itself out: the system tenant can be neither disabled nor stripped of the admin resource through the API', async () => {
      expectProblem(await as(admin).post(`/tenants/${SYSTEM}/disable`), 409);
      const current = (await as(admin).get(`/tenants/${SYSTEM}`)).body as { settings: Record<string, unknown> };
      expectProblem(await as(admin).patch(`/tenants/${SYSTEM}`, { settings: { ...current.settings, resources: [] } }), 409);
      expect((await as(admin).get('/tenants')).status).toBe(200);
    });

    it('a system tenant disabled from the CLI locks the admin API out, and enabling it there lets operators back in', async () => {
      const disabled = await runCli(castellan.env, ['tenant', 'disable', SYSTEM]);
      expect(disabled.code, disabled.stderr).toBe(0);
      expect(disabled.stdout).toContain(`${SYSTEM}: disabled`);
      // The CLI is another process: the server re-reads the tenant within its 10 s bound.
      const statusWithin = async (token: string, want: number): Promise<number> => {
        let status = 0;
        for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(250)) {
          status = (await as(token).get('/tenants')).status;
          if (status === want) break;
        }
        return status;
      };
      expect(await statusWithin(admin, 401)).toBe(401);
      const enabled = await runCli(castellan.env, ['tenant', 'enable', SYSTEM]);
      expect(enabled.code, enabled.stderr).toBe(0);
      expect(enabled.stdout).toContain(`${SYSTEM}: enabled`);
      expect(await statusWithin(admin, 200)).toBe(200);
    }, 60_000);
  });
});
