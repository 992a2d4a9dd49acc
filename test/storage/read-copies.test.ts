import { Redis } from 'ioredis';
import { MongoClient, type Db } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelName, ModelStore, Payload, RecordStore, StoredRecord } from '../../src/storage/model-store.ts';
import { createMongoModelStores, type MongoModelStores } from '../../src/storage/mongo/mongo-model-store.ts';
import { createRedisReadCopies } from '../../src/storage/redis/read-copies.ts';
import { createMemoryModelStores } from '../../src/storage/memory/memory-model-store.ts';
import { createAdapterFactory } from '../../src/storage/oidc-adapter.ts';
import { errors } from 'oidc-provider';
import { deleteRedisKeys, testServers, uniqueDbName, uniqueRedisPrefix } from '../support/servers.ts';

/*
 * Redis read copies in front of MongoDB (src/storage/redis/read-copies.ts) on the real
 * FerretDB and Redis: reads are served from Redis, MongoDB stays the truth, and a revoked
 * record is never served from a copy.
 */

const HOUR = 3600;
const prefix = uniqueRedisPrefix('read-copies');
const dbName = uniqueDbName('read_copies');
let mongo: MongoClient;
let db: Db;
let mongoStores: MongoModelStores;
let redis: Redis;
let namespaces = 0;

beforeAll(async () => {
  mongo = new MongoClient(testServers().mongoUrl);
  db = mongo.db(dbName);
  mongoStores = createMongoModelStores(db);
  await mongoStores.ensureIndexes();
  redis = new Redis(testServers().redisUrl);
});

afterAll(async () => {
  await mongoStores.close();
  await db.dropDatabase();
  await mongo.close();
  await deleteRedisKeys(redis, prefix);
  redis.disconnect();
});

/** A durable store that counts MongoDB reads and can hold a read after MongoDB answered it. */
class WatchedStore implements RecordStore {
  readonly inner: RecordStore;
  mongoReads = 0;
  /** While set, a findRecord waits for it after reading MongoDB (a slow reader). */
  hold: Promise<void> | undefined;
  /** Resolved when a held read has read MongoDB. */
  onHeld: (() => void) | undefined;

  constructor(inner: RecordStore) {
    this.inner = inner;
  }

  upsert(model: ModelName, id: string, payload: Payload, expiresIn?: number): Promise<void> {
    return this.inner.upsert(model, id, payload, expiresIn);
  }
  find(model: ModelName, id: string): Promise<Payload | undefined> {
    this.mongoReads += 1;
    return this.inner.find(model, id);
  }
  async findRecord(model: ModelName, id: string): Promise<StoredRecord | undefined> {
    this.mongoReads += 1;
    const record = await this.inner.findRecord(model, id);
    const hold = this.hold;
    if (hold !== undefined) {
      this.onHeld?.();
      await hold;
    }
    return record;
  }
  findByUid(model: ModelName, uid: string): Promise<Payload | undefined> {
    return this.inner.findByUid(model, uid);
  }
  findByUserCode(model: ModelName, userCode: string): Promise<Payload | undefined> {
    return this.inner.findByUserCode(model, userCode);
  }
  consume(model: ModelName, id: string): Promise<boolean> {
    return this.inner.consume(model, id);
  }
  destroy(model: ModelName, id: string): Promise<void> {
    return this.inner.destroy(model, id);
  }
  revokeByGrantId(grantId: string): Promise<void> {
    return this.inner.revokeByGrantId(grantId);
  }
  revokeByClientId(clientId: string, models?: readonly ModelName[]): Promise<void> {
    return this.inner.revokeByClientId(clientId, models);
  }
}

interface Node {
  store: ModelStore;
  watched: WatchedStore;
}

/** Two "nodes" on the same MongoDB and Redis (each its own wrapper objects), one namespace. */
function twoNodes(): { ns: string; a: Node; b: Node } {
  namespaces += 1;
  const ns = `t${namespaces}`;
  const node = (): Node => {
    const watched = new WatchedStore(mongoStores.forNamespace(ns));
    return { watched, store: createRedisReadCopies(redis, { keyPrefix: prefix }).wrap(ns, watched) };
  };
  return { ns, a: node(), b: node() };
}

function token(jti: string, extra: Payload = {}): Payload {
  const iat = Math.floor(Date.now() / 1000);
  return { iat, exp: iat + HOUR, jti, kind: 'AccessToken', clientId: 'client-1', accountId: 'acct', ...extra };
}

function held(watched: WatchedStore): { release: () => void; reached: Promise<void> } {
  let release: () => void = () => {};
  watched.hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  const reached = new Promise<void>((resolve) => {
    watched.onHeld = resolve;
  });
  return {
    reached,
    release: () => {
      watched.hold = undefined;
      release();
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A record in MongoDB that Redis knows nothing of (saved by a node without Redis, or its copy aged out): its first read asks MongoDB. */
function storeInMongoOnly(node: Node, model: ModelName, id: string, payload: Payload): Promise<void> {
  return node.watched.inner.upsert(model, id, payload, HOUR);
}

describe('Redis read copies of durable records', () => {
  it('serves repeated reads from Redis, not MongoDB, and misses too', async () => {
    const { a } = twoNodes();
    await storeInMongoOnly(a, 'AccessToken', 'at', token('at', { grantId: 'g' }));
    expect(await a.store.find('AccessToken', 'at')).toMatchObject({ jti: 'at' });
    const afterFill = a.watched.mongoReads;
    for (let i = 0; i < 5; i += 1) expect(await a.store.find('AccessToken', 'at')).toMatchObject({ jti: 'at', grantId: 'g' });
    expect(await a.store.find('ClientCredentials', 'at')).toBeUndefined();
    const afterMiss = a.watched.mongoReads;
    for (let i = 0; i < 5; i += 1) expect(await a.store.find('ClientCredentials', 'at')).toBeUndefined();
    expect(afterFill).toBe(1);
    expect(a.watched.mongoReads).toBe(afterMiss);
  });

  it('writes a new record through: its first read, on any node, does not ask MongoDB', async () => {
    const { a, b } = twoNodes();
    // A miss cached before the record existed does not stop it either.
    expect(await b.store.find('RefreshToken', 'rt')).toBeUndefined();
    const readsBefore = b.watched.mongoReads;
    await a.store.upsert('AccessToken', 'at', token('at', { grantId: 'g' }), HOUR);
    await a.store.upsert('RefreshToken', 'rt', token('rt', { grantId: 'g', kind: 'RefreshToken' }), HOUR);
    for (const node of [a, b]) {
      expect(await node.store.find('AccessToken', 'at')).toMatchObject({ jti: 'at', grantId: 'g' });
      expect(await node.store.find('RefreshToken', 'rt')).toMatchObject({ jti: 'rt' });
    }
    expect(a.watched.mongoReads).toBe(0);
    expect(b.watched.mongoReads).toBe(readsBefore);
    // The copy keeps the record's expiry, and its grant's revocation reaches it.
    await a.store.revokeByGrantId('g');
    expect(await b.store.find('AccessToken', 'at')).toBeUndefined();
    expect(await b.store.find('RefreshToken', 'rt')).toBeUndefined();
  });

  it('writes through neither a re-saved record nor one destroyed lately nor a token of a grant under revocation', async () => {
    const { ns, a } = twoNodes();
    const key = (id: string) => `${prefix}:{${ns}:AccessToken:${id}}:copy`;
    await a.store.upsert('AccessToken', 'again', token('again'), HOUR);
    await a.store.upsert('AccessToken', 'again', token('again', { scope: 'more' }), HOUR);
    expect(await redis.get(key('again'))).toMatch(/^\?/);
    await a.store.upsert('AccessToken', 'gone', token('gone'), HOUR);
    await a.store.destroy('AccessToken', 'gone');
    await a.store.upsert('AccessToken', 'gone', token('gone'), HOUR);
    expect(await redis.get(key('gone'))).toMatch(/^\?/);
    await a.store.revokeByGrantId('revoked');
    await a.store.upsert('AccessToken', 'late', token('late', { grantId: 'revoked' }), HOUR);
    expect(await redis.get(key('late'))).toMatch(/^\?/);
    // Each is then read from MongoDB, the truth.
    const before = a.watched.mongoReads;
    expect(await a.store.find('AccessToken', 'again')).toMatchObject({ scope: 'more' });
    expect(a.watched.mongoReads).toBe(before + 1);
  });

  it('an update on one node is what the other node reads next', async () => {
    const { a, b } = twoNodes();
    await a.store.upsert('Grant', 'g1', { jti: 'g1', clientId: 'c', openid: { scope: 'openid email' } }, HOUR);
    expect(await b.store.find('Grant', 'g1')).toMatchObject({ openid: { scope: 'openid email' } });
    await a.store.upsert('Grant', 'g1', { jti: 'g1', clientId: 'c', openid: { scope: 'openid' } }, HOUR);
    expect(await b.store.find('Grant', 'g1')).toMatchObject({ openid: { scope: 'openid' } });
    // And an id first read as missing is found once stored.
    expect(await b.store.find('AccessToken', 'later')).toBeUndefined();
    await a.store.upsert('AccessToken', 'later', token('later'), HOUR);
    expect(await b.store.find('AccessToken', 'later')).toMatchObject({ jti: 'later' });
  });

  it('a destroyed token is gone from every node at once, and a read that fetched it before cannot cache it back', async () => {
    const { ns, a, b } = twoNodes();
    await a.store.upsert('AccessToken', 'at', token('at'), HOUR);
    await storeInMongoOnly(a, 'AccessToken', 'slow', token('slow'));
    expect(await b.store.find('AccessToken', 'at')).toBeDefined(); // B holds a copy now

    // A reader on B fetched 'slow' from MongoDB before the revocation and fills after it.
    const gate = held(b.watched);
    const slowRead = b.store.find('AccessToken', 'slow');
    await gate.reached;
    await a.store.destroy('AccessToken', 'slow');
    await a.store.destroy('AccessToken', 'at');
    gate.release();
    expect(await slowRead).toMatchObject({ jti: 'slow' }); // it began before the revocation returned

    for (const id of ['at', 'slow']) {
      expect(await b.store.find('AccessToken', id), id).toBeUndefined();
      expect(await a.store.find('AccessToken', id), id).toBeUndefined();
      expect(await redis.get(`${prefix}:{${ns}:AccessToken:${id}}:copy`), id).toBe('!');
    }
  });

  it('revokeByGrantId kills copies filled before it, on every node, and spares other grants', async () => {
    const { a, b } = twoNodes();
    await a.store.upsert('AccessToken', 'g-1', token('g-1', { grantId: 'g' }), HOUR);
    await a.store.upsert('RefreshToken', 'g-2', token('g-2', { grantId: 'g' }), HOUR);
    await a.store.upsert('AccessToken', 'h-1', token('h-1', { grantId: 'h' }), HOUR);
    for (const node of [a, b]) {
      expect(await node.store.find('AccessToken', 'g-1')).toBeDefined();
      expect(await node.store.find('RefreshToken', 'g-2')).toBeDefined();
      expect(await node.store.find('AccessToken', 'h-1')).toBeDefined();
    }
    await a.store.revokeByGrantId('g');
    for (const node of [b, a]) {
      expect(await node.store.find('AccessToken', 'g-1')).toBeUndefined();
      expect(await node.store.find('RefreshToken', 'g-2')).toBeUndefined();
      expect(await node.store.find('AccessToken', 'h-1')).toMatchObject({ jti: 'h-1' });
    }
  });

  it('a reader that fetched a token of a grant before its revocation and fills after it caches nothing', async () => {
    const { a, b } = twoNodes();
    await a.store.upsert('AccessToken', 'before', token('before', { grantId: 'g' }), HOUR);
    await storeInMongoOnly(a, 'AccessToken', 'during', token('during', { grantId: 'g' }));
    expect(await b.store.find('AccessToken', 'before')).toBeDefined();

    const gate = held(b.watched);
    const slowRead = b.store.find('AccessToken', 'during');
    await gate.reached;
    await a.store.revokeByGrantId('g');
    gate.release();
    await slowRead;
    expect(await b.store.find('AccessToken', 'before')).toBeUndefined();
    expect(await b.store.find('AccessToken', 'during')).toBeUndefined();
  });

  it('revokeByClientId kills the copies of every token and grant of the client', async () => {
    const { a, b } = twoNodes();
    await a.store.upsert('ClientCredentials', 'cc', token('cc', { clientId: 'gone' }), HOUR);
    await a.store.upsert('Grant', 'gr', { jti: 'gr', clientId: 'gone', accountId: 'acct' }, HOUR);
    await a.store.upsert('ClientCredentials', 'other', token('other', { clientId: 'stays' }), HOUR);
    for (const [model, id] of [['ClientCredentials', 'cc'], ['Grant', 'gr'], ['ClientCredentials', 'other']] as const) {
      expect(await b.store.find(model, id)).toBeDefined();
    }
    await a.store.revokeByClientId('gone');
    expect(await b.store.find('ClientCredentials', 'cc')).toBeUndefined();
    expect(await b.store.find('Grant', 'gr')).toBeUndefined();
    expect(await b.store.find('ClientCredentials', 'other')).toMatchObject({ jti: 'other' });
  });

  for (const how of ['destroy', 'revokeByGrantId'] as const) {
    it(`50 concurrent reads racing a revocation (${how}): once it returns, every read says gone`, async () => {
      const { a, b } = twoNodes();
      await a.store.upsert('AccessToken', 'hot', token('hot', { grantId: 'hot-grant' }), HOUR);
      let revoked = false;
      const startedAfter: Array<Promise<Payload | undefined>> = [];
      const reads = Array.from({ length: 50 }, async (_, i) => {
        await sleep(i % 10);
        const node = i % 2 === 0 ? a : b;
        const read = node.store.find('AccessToken', 'hot');
        if (revoked) startedAfter.push(read);
        return read;
      });
      const revocation = (async () => {
        await sleep(4);
        if (how === 'destroy') await b.store.destroy('AccessToken', 'hot');
        else await b.store.revokeByGrantId('hot-grant');
        revoked = true;
      })();
      await Promise.all([...reads, revocation]);
      for (const read of startedAfter) expect(await read).toBeUndefined();
      const after = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).store.find('AccessToken', 'hot')));
      expect(after.every((found) => found === undefined)).toBe(true);
    });
  }

  it('a copy honours the record\'s expiry', async () => {
    const { a, b } = twoNodes();
    // The payload claims an hour; the record itself lives one second.
    await a.store.upsert('AccessToken', 'short', token('short'), 1);
    expect(await b.store.find('AccessToken', 'short')).toBeDefined();
    expect(await b.store.find('AccessToken', 'short')).toBeDefined();
    await sleep(1100);
    expect(await b.store.find('AccessToken', 'short')).toBeUndefined();
    expect(await a.store.find('AccessToken', 'short')).toBeUndefined();
  });

  it('a consumed refresh token reads as consumed on the other node at once', async () => {
    const { a, b } = twoNodes();
    await a.store.upsert('RefreshToken', 'rt', token('rt', { grantId: 'g' }), HOUR);
    expect((await b.store.find('RefreshToken', 'rt'))?.consumed).toBeUndefined();
    expect(await a.store.consume('RefreshToken', 'rt')).toBe(true);
    expect(typeof (await b.store.find('RefreshToken', 'rt'))?.consumed).toBe('number');
    expect(await b.store.consume('RefreshToken', 'rt')).toBe(false);
  });

  it('the losers of a refresh-token consume race revoke the grant: copies made before are dead on every node', async () => {
    const { ns, a, b } = twoNodes();
    const ephemeral = createMemoryModelStores().forNamespace(ns);
    const adapterA = createAdapterFactory({ durable: a.store, ephemeral });
    const adapterB = createAdapterFactory({ durable: b.store, ephemeral });
    await adapterA('Grant').upsert('g', { jti: 'g', clientId: 'client-1', accountId: 'acct' }, HOUR);
    await adapterA('RefreshToken').upsert('rt', token('rt', { grantId: 'g' }), HOUR);
    await adapterA('AccessToken').upsert('at', token('at', { grantId: 'g' }), HOUR);
    for (const adapter of [adapterA, adapterB]) {
      expect(await adapter('AccessToken').find('at')).toBeDefined();
      expect(await adapter('Grant').find('g')).toBeDefined();
    }
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? adapterA : adapterB)('RefreshToken').consume('rt')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(errors.InvalidGrant);
    for (const adapter of [adapterB, adapterA]) {
      expect(await adapter('AccessToken').find('at')).toBeUndefined();
      expect(await adapter('Grant').find('g')).toBeUndefined();
    }
  });

  it('models without copies go straight to MongoDB', async () => {
    const { a, ns } = twoNodes();
    await a.store.upsert('RegistrationAccessToken', 'rat', { jti: 'rat', clientId: 'c' });
    expect(await a.store.find('RegistrationAccessToken', 'rat')).toEqual({ jti: 'rat', clientId: 'c' });
    expect(await redis.exists(`${prefix}:{${ns}:RegistrationAccessToken:rat}:copy`)).toBe(0);
  });
});
