import { describe, expect, it } from 'vitest';
import { createMemoryUserStore } from '../../src/accounts/user-store.memory.ts';
import { createMongoUserStore } from '../../src/accounts/user-store.mongo.ts';
import type { UserStore } from '../../src/accounts/user-store.ts';
import { createMemoryModelStores } from '../../src/storage/memory/memory-model-store.ts';
import type { ModelStore, RecordLister } from '../../src/storage/model-store.ts';
import { createMongoModelStores } from '../../src/storage/mongo/mongo-model-store.ts';
import { createMemoryTenantStore } from '../../src/tenants/tenant-store.memory.ts';
import { createMongoTenantStore } from '../../src/tenants/tenant-store.mongo.ts';
import type { TenantStore } from '../../src/tenants/tenant-store.ts';
import { useFreshMongoDatabases } from '../keys/mongo-databases.ts';

/**
 * The operators' queries the admin API added to the stores (listing records by client or
 * account, listing and deleting users, a tenant's disabled flag), on every durable backend.
 */
const freshDb = useFreshMongoDatabases('admin_queries');

interface Backends {
  models: (ns: string) => ModelStore & RecordLister;
  users: () => UserStore;
  tenants: () => TenantStore;
}

const backends: Record<string, () => Backends> = {
  memory: () => {
    const models = createMemoryModelStores();
    return { models: (ns) => models.forNamespace(ns), users: () => createMemoryUserStore(), tenants: () => createMemoryTenantStore() };
  },
  FerretDB: () => {
    const db = freshDb();
    const models = createMongoModelStores(db);
    return { models: (ns) => models.forNamespace(ns), users: () => createMongoUserStore(db), tenants: () => createMongoTenantStore(db) };
  },
};

describe.each(Object.keys(backends))('admin queries on %s', (name) => {
  const open = () => (backends[name] as () => Backends)();

  it('lists a namespace\'s live records of one model, by clientId or accountId, never another namespace\'s', async () => {
    const { models } = open();
    const store = models('acme');
    await store.upsert('Client', 'c1', { client_id: 'c1' });
    await store.upsert('Client', 'c2', { client_id: 'c2' });
    await models('other').upsert('Client', 'c3', { client_id: 'c3' });
    await store.upsert('Grant', 'g1', { jti: 'g1', accountId: 'alice', clientId: 'c1' }, 3600);
    await store.upsert('Grant', 'g2', { jti: 'g2', accountId: 'bob', clientId: 'c1' }, 3600);
    await store.upsert('Grant', 'g3', { jti: 'g3', accountId: 'alice', clientId: 'c2' }, 3600);
    await store.upsert('Grant', 'g-expired', { jti: 'g-expired', accountId: 'alice', clientId: 'c1' }, 0.001);
    await new Promise((resolve) => setTimeout(resolve, 20));

    expect((await store.list('Client')).map((r) => r.id)).toEqual(['c1', 'c2']);
    expect((await store.list('Client', { clientId: 'c2' })).map((r) => r.payload.client_id)).toEqual(['c2']);
    expect((await store.list('Grant', { accountId: 'alice' })).map((r) => r.id)).toEqual(['g1', 'g3']);
    expect((await store.list('Grant', { clientId: 'c1' })).map((r) => r.id)).toEqual(['g1', 'g2']);
    expect((await store.list('Grant', { clientId: 'c1', accountId: 'bob' })).map((r) => r.id)).toEqual(['g2']);
    expect((await store.list('Grant', { limit: 1 })).map((r) => r.id)).toEqual(['g1']);
    // Pages: after the previous page's last id, with the same filters.
    expect((await store.list('Grant', { clientId: 'c1', limit: 1, after: 'g1' })).map((r) => r.id)).toEqual(['g2']);
    expect(await store.list('Grant', { clientId: 'c1', after: 'g2' })).toEqual([]);
    expect(await store.list('AccessToken')).toEqual([]);
  });

  it('lists a tenant\'s users and deletes one, freeing its login', async () => {
    const users = open().users();
    const alice = await users.create({ tenant: 'acme', login: 'Alice' });
    const bob = await users.create({ tenant: 'acme', login: 'bob' });
    await users.create({ tenant: 'other', login: 'carol' });
    expect((await users.list('acme')).map((u) => u.id).sort()).toEqual([alice.id, bob.id].sort());
    const [first, ...rest] = (await users.list('acme')).map((u) => u.id);
    expect((await users.list('acme', { limit: 1 })).map((u) => u.id)).toEqual([first]);
    expect((await users.list('acme', { after: first })).map((u) => u.id)).toEqual(rest);
    expect(await users.delete('acme', alice.id)).toBe(true);
    expect(await users.delete('acme', alice.id)).toBe(false);
    expect(await users.findById('acme', alice.id)).toBeUndefined();
    expect(await users.findByLogin('acme', 'alice')).toBeUndefined();
    // The login is free again.
    expect((await users.create({ tenant: 'acme', login: 'alice' })).id).not.toBe(alice.id);
  });

  it('keeps a tenant\'s disabled flag through updates until it is cleared', async () => {
    const tenants = open().tenants();
    await tenants.create({ id: 'acme', displayName: 'Acme' });
    expect((await tenants.get('acme'))?.disabled).toBeFalsy();
    await tenants.update('acme', { disabled: true });
    expect((await tenants.get('acme'))?.disabled).toBe(true);
    await tenants.update('acme', { displayName: 'Acme Corp' });
    expect(await tenants.get('acme')).toMatchObject({ displayName: 'Acme Corp', disabled: true });
    await tenants.update('acme', { disabled: false });
    expect((await tenants.get('acme'))?.disabled).toBeFalsy();
  });
});
