import { Redis } from 'ioredis';
import { MongoClient, type Db } from 'mongodb';
import { afterAll, describe, expect, it } from 'vitest';
import { createMemoryModelStores } from '../../src/storage/memory/memory-model-store.ts';
import type { ModelStore } from '../../src/storage/model-store.ts';
import { createMongoModelStores, type MongoModelStores } from '../../src/storage/mongo/mongo-model-store.ts';
import { createRedisModelStores } from '../../src/storage/redis/redis-model-store.ts';
import { createRedisReadCopies } from '../../src/storage/redis/read-copies.ts';
import { ClientCache } from '../../src/storage/client-cache.ts';
import { InvalidNamespaceError } from '../../src/storage/shared/store-errors.ts';
import { deleteRedisKeys, testServers, uniqueDbName, uniqueRedisPrefix } from '../support/servers.ts';
import { describeModelStoreContract } from './model-store.cases.ts';

// Each case gets fresh namespaces on one connection per backend, so cases never see each
// other's records and the file opens only one MongoDB and one Redis connection.
let namespaces = 0;
const freshNamespace = (): string => `tenant-${(namespaces += 1)}`;
const noCleanup = async (): Promise<void> => {};

function lazily<T>(open: () => Promise<T>): () => Promise<T> {
  let opened: Promise<T> | undefined;
  return () => (opened ??= open());
}

const memory = createMemoryModelStores();

const mongoDbName = uniqueDbName('model_store_contract');
let mongoClient: MongoClient | undefined;
const mongo = lazily(async (): Promise<{ db: Db; stores: MongoModelStores }> => {
  mongoClient = new MongoClient(testServers().mongoUrl);
  const db = mongoClient.db(mongoDbName);
  const stores = createMongoModelStores(db);
  await stores.ensureIndexes();
  return { db, stores };
});

const redisPrefix = uniqueRedisPrefix('model-store-contract');
let redisClient: Redis | undefined;
const redis = lazily(async () => {
  redisClient = new Redis(testServers().redisUrl);
  return createRedisModelStores(redisClient, { keyPrefix: redisPrefix });
});

afterAll(async () => {
  if (mongoClient !== undefined) {
    const { db, stores } = await mongo();
    await stores.close();
    await db.dropDatabase();
    await mongoClient.close();
  }
  if (redisClient !== undefined) {
    await deleteRedisKeys(redisClient, redisPrefix);
    await deleteRedisKeys(redisClient, `${redisPrefix}-copies`);
    redisClient.disconnect();
  }
});

describeModelStoreContract('memory', async () => ({
  store: memory.forNamespace(freshNamespace()),
  otherNamespace: memory.forNamespace(freshNamespace()),
  cleanup: noCleanup,
}));

describeModelStoreContract('MongoDB (FerretDB)', async () => {
  const { stores } = await mongo();
  return { store: stores.forNamespace(freshNamespace()), otherNamespace: stores.forNamespace(freshNamespace()), cleanup: noCleanup };
});

describeModelStoreContract('Redis', async () => {
  const stores = await redis();
  return { store: stores.forNamespace(freshNamespace()), otherNamespace: stores.forNamespace(freshNamespace()), cleanup: noCleanup };
});

// Production's durable store: MongoDB behind Redis read copies and the per-node client cache.
describeModelStoreContract('MongoDB with Redis read copies and the client cache', async () => {
  const { stores } = await mongo();
  await redis();
  const copies = createRedisReadCopies(redisClient as Redis, { keyPrefix: `${redisPrefix}-copies` });
  const cache = new ClientCache();
  const wrapped = (ns: string) => cache.wrap(ns, copies.wrap(ns, stores.forNamespace(ns)));
  return { store: wrapped(freshNamespace()), otherNamespace: wrapped(freshNamespace()), cleanup: noCleanup };
});

describe('store factories', () => {
  const factories: Array<[string, () => Promise<{ forNamespace(ns: string): ModelStore }>]> = [
    ['memory', async () => memory],
    ['MongoDB', async () => (await mongo()).stores],
    ['Redis', redis],
  ];
  for (const [name, factory] of factories) {
    it(`${name} refuses a namespace that could collide with another in its keys`, async () => {
      const stores = await factory();
      for (const bad of ['', 'a:b', 'a{b}', 'a b', 'x'.repeat(129)]) {
        expect(() => stores.forNamespace(bad), JSON.stringify(bad)).toThrow(InvalidNamespaceError);
      }
      expect(stores.forNamespace('acme-corp')).toBe(stores.forNamespace('acme-corp'));
    });
  }
});

describe('MongoDB store on FerretDB', () => {
  it('ensureIndexes carries on when the server refuses TTL indexes, and can run again', async () => {
    const { db } = await mongo();
    const stores = createMongoModelStores(db, { collectionPrefix: 'again_' });
    // FerretDB v1.24.2 answers TTL with NotImplemented (STORES.md); real MongoDB accepts it.
    expect(await stores.ensureIndexes()).toEqual({ ttl: false });
    const fresh = createMongoModelStores(db, { collectionPrefix: 'again_' });
    expect(await fresh.ensureIndexes()).toEqual({ ttl: false });
    const names = (await db.collection('again_Session').indexes()).map((index) => index.name);
    expect(names).toEqual(expect.arrayContaining(['ns_1_uid_1', 'ns_1_userCode_1', 'ns_1_grantId_1']));
  });

  it('sweepExpired deletes expired records and their consumptions, and nothing live', async () => {
    const { db } = await mongo();
    const stores = createMongoModelStores(db, { collectionPrefix: 'sweep_' });
    const store = stores.forNamespace('sweep');
    await store.upsert('AuthorizationCode', 'short', { jti: 'short' }, 1);
    await store.upsert('AuthorizationCode', 'long', { jti: 'long' }, 3600);
    await store.upsert('Client', 'forever', { client_id: 'forever' });
    expect(await store.consume('AuthorizationCode', 'short')).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1100));

    expect(await stores.sweepExpired()).toBe(2);
    expect(await db.collection('sweep_AuthorizationCode').countDocuments()).toBe(1);
    expect(await db.collection('sweep_consumptions').countDocuments()).toBe(0);
    expect(await store.find('AuthorizationCode', 'long')).toEqual({ jti: 'long' });
    expect(await store.find('Client', 'forever')).toEqual({ client_id: 'forever' });
    await stores.close();
  });
});

describe('Redis store', () => {
  // A busy client issues codes all day: its index must hold its live records, not its history.
  it('prunes expired members from a client\'s index as new ones arrive', async () => {
    const stores = await redis();
    const store = stores.forNamespace('client-index');
    for (let i = 0; i < 5; i += 1) {
      await store.upsert('AuthorizationCode', `short-${i}`, { jti: `short-${i}`, clientId: 'busy' }, 1);
    }
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await store.upsert('AuthorizationCode', 'live', { jti: 'live', clientId: 'busy' }, 60);
    const index = `${redisPrefix}:{client-index:busy}:client`;
    expect(await redisClient?.zrange(index, '0', '-1')).toEqual(['AuthorizationCode:live']);
    const ttl = (await redisClient?.pttl(index)) ?? 0;
    expect(ttl).toBeGreaterThan(55_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await store.upsert('RegistrationAccessToken', 'rat', { jti: 'rat', clientId: 'busy' });
    expect(await redisClient?.pttl(index)).toBe(-1);
  });
});

