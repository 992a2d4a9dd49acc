import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../../config/settings.ts';
import { createMemoryAuditSink } from '../../observability/audit.ts';
import { openCore, type CastellanCore } from '../../server.ts';
import type { AdminActor } from './admin-actor.ts';
import { createClientAdmin } from './clients.ts';
import { createGrantAdmin } from './grants.ts';
import { createPolicyAdmin } from './policies.ts';
import { createTenantAdmin } from './tenants.ts';
import { createUserAdmin } from './users.ts';

const actor: AdminActor = { via: 'cli', subject: 'tester' };
const sink = createMemoryAuditSink();
let core: CastellanCore;

beforeAll(async () => {
  core = await openCore(loadSettings({ LOG_LEVEL: 'silent', CASTELLAN_DEMO: 'false' }), pino({ level: 'silent' }), { audit: sink });
});
afterAll(async () => {
  await core.close();
});

describe('admin services on the in-memory store', () => {
  it('create a tenant, a confidential client (secret shown once, stored as a digest), a user; list, update, delete', async () => {
    const tenants = createTenantAdmin(core);
    const created = await tenants.create({ id: 'acme', displayName: 'Acme', settings: { scopes: ['files:read'] } }, actor);
    expect(created).toMatchObject({ id: 'acme', disabled: false });
    await expect(tenants.create({ id: 'acme', displayName: 'Again' }, actor)).rejects.toMatchObject({ status: 409 });
    await expect(tenants.create({ id: 'Bad Id', displayName: 'x' }, actor)).rejects.toMatchObject({ status: 400 });
    await expect(tenants.create({ id: 'bad-settings', displayName: 'x', settings: { scopes: 'nope' } }, actor)).rejects.toMatchObject({ status: 400 });

    const clients = createClientAdmin(core);
    const { client, clientSecret } = await clients.create('acme', { client_id: 'svc', grant_types: ['client_credentials'], response_types: [], token_endpoint_auth_method: 'client_secret_basic', scope: 'files:read' }, actor);
    expect(clientSecret).toMatch(/^[\w-]{43}$/);
    expect(client).toMatchObject({ client_id: 'svc', has_secret: true, scope: 'files:read' });
    expect(JSON.stringify(client)).not.toContain(clientSecret);
    const stored = await core.storage.modelStores('acme').durable.find('Client', 'svc');
    expect(String(stored?.['client_secret'])).toMatch(/^\$sha256\$/);
    expect((await clients.list('acme')).items.map((c) => c.client_id)).toEqual(['svc']);
    await expect(clients.create('acme', { client_id: 'svc', grant_types: ['client_credentials'], response_types: [] }, actor)).rejects.toMatchObject({ status: 409 });
    await expect(clients.create('acme', { redirect_uris: ['http://evil.example/cb'] }, actor)).rejects.toMatchObject({ status: 400 });

    const users = createUserAdmin(core);
    const user = await users.create('acme', { login: 'alice', password: 'correct horse battery', email: 'alice@example.com' }, actor);
    expect(user).toMatchObject({ login: 'alice', claims: { email: 'alice@example.com' } });
    await expect(users.create('acme', { login: 'ALICE', password: 'another password' }, actor)).rejects.toMatchObject({ status: 409 });
    expect((await users.list('acme')).items.map((u) => u.id)).toEqual([user.id]);

    await core.storage.modelStores('acme').durable.upsert('Grant', 'g1', { jti: 'g1', kind: 'Grant', accountId: user.id, clientId: 'svc', openid: { scope: 'openid' }, iat: 1, exp: 4_000_000_000 });
    const grants = createGrantAdmin(core);
    expect((await grants.list('acme', { userId: user.id })).items.map((g) => g.id)).toEqual(['g1']);
    expect((await grants.list('acme', { clientId: 'svc' })).items.map((g) => g.id)).toEqual(['g1']);
    await expect(grants.list('acme', {})).rejects.toMatchObject({ status: 400 });
    await users.delete('acme', user.id, actor);
    expect(await grants.list('acme', { userId: user.id })).toEqual({ items: [] });
    await expect(users.get('acme', user.id)).rejects.toMatchObject({ status: 404 });

    const policies = createPolicyAdmin(core);
    const policy = await policies.update('acme', { deviceFlow: { enabled: true } }, actor);
    expect(policy.deviceFlow).toMatchObject({ enabled: true, interval: 5 });
    expect((await tenants.get('acme')).settings).toMatchObject({ scopes: ['files:read'], deviceFlow: { enabled: true } });
    await expect(policies.update('acme', { deviceFlow: { interval: 0 } }, actor)).rejects.toMatchObject({ status: 400 });

    await tenants.disable('acme', actor);
    await expect(core.tenants.get('acme')).rejects.toMatchObject({ status: 404 });
    await tenants.enable('acme', actor);
    await expect(core.tenants.get('acme')).resolves.toMatchObject({ tenantId: 'acme' });

    await clients.delete('acme', 'svc', actor);
    await expect(clients.get('acme', 'svc')).rejects.toMatchObject({ status: 404 });

    const types = sink.events.map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['admin_tenant_created', 'admin_client_created', 'admin_user_created', 'admin_grants_revoked', 'admin_user_deleted', 'admin_policy_updated', 'admin_tenant_disabled', 'admin_tenant_enabled', 'admin_client_deleted']));
    expect(JSON.stringify(sink.events)).not.toContain(clientSecret);
    expect(JSON.stringify(sink.events)).not.toContain('correct horse');
  });

  it('lists in pages by id, and revokes every grant of a user, beyond one page', async () => {
    await createTenantAdmin(core).create({ id: 'paged', displayName: 'Paged' }, actor);
    const store = core.storage.modelStores('paged').durable;
    const ids = Array.from({ length: 1005 }, (_, i) => `g${String(i).padStart(4, '0')}`);
    for (const id of ids) {
      await store.upsert('Grant', id, { jti: id, kind: 'Grant', accountId: 'many', clientId: 'c', iat: 1, exp: 4_000_000_000 }, 3600);
    }
    const grants = createGrantAdmin(core);
    const first = await grants.list('paged', { userId: 'many', limit: '2' });
    expect(first).toEqual({ items: [expect.objectContaining({ id: 'g0000' }), expect.objectContaining({ id: 'g0001' })], next: 'g0001' });
    const second = await grants.list('paged', { userId: 'many', limit: 2, after: first.next });
    expect(second.items.map((g) => g.id)).toEqual(['g0002', 'g0003']);
    const last = await grants.list('paged', { userId: 'many', after: 'g1003' });
    expect(last).toEqual({ items: [expect.objectContaining({ id: 'g1004' })] });
    await expect(grants.list('paged', { userId: 'many', limit: 0 })).rejects.toMatchObject({ status: 400 });

    expect(await grants.revoke('paged', { userId: 'many' }, actor)).toEqual({ revoked: 1005 });
    expect(await grants.list('paged', { userId: 'many' })).toEqual({ items: [] });
  });
});
