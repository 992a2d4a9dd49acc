import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ClientCache, type ClientChangeBus } from '../../src/storage/client-cache.ts';
import { createMemoryModelStores } from '../../src/storage/memory/memory-model-store.ts';
import type { ModelName, ModelStore, Payload } from '../../src/storage/model-store.ts';
import { createRedisClientChangeBus } from '../../src/storage/redis/client-change-bus.ts';
import { testServers, uniqueRedisPrefix } from '../support/servers.ts';

/** A store that counts Client finds and can hold one until released. */
function countingStore(): { store: ModelStore; finds: () => number; hold: () => () => void } {
  const inner = createMemoryModelStores().forNamespace('t');
  let finds = 0;
  let gate: Promise<void> | undefined;
  const store: ModelStore = {
    upsert: (m, id, p, e) => inner.upsert(m, id, p, e),
    async find(model: ModelName, id: string): Promise<Payload | undefined> {
      if (model === 'Client') finds += 1;
      const found = await inner.find(model, id);
      if (gate !== undefined) await gate;
      return found;
    },
    findByUid: (m, u) => inner.findByUid(m, u),
    findByUserCode: (m, c) => inner.findByUserCode(m, c),
    consume: (m, id) => inner.consume(m, id),
    destroy: (m, id) => inner.destroy(m, id),
    revokeByGrantId: (g) => inner.revokeByGrantId(g),
    revokeByClientId: (c, m) => inner.revokeByClientId(c, m),
  };
  return {
    store,
    finds: () => finds,
    hold: () => {
      let release: () => void = () => {};
      gate = new Promise((resolve) => {
        release = resolve;
      });
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

function fakeBus(): ClientChangeBus & { up: boolean; published: Array<[string, string]> } {
  const bus = {
    up: true,
    published: [] as Array<[string, string]>,
    async publish(ns: string, id: string) {
      bus.published.push([ns, id]);
    },
    listening: () => bus.up,
    async close() {},
  };
  return bus;
}

describe('per-node client cache', () => {
  it('serves repeated finds, hits and misses, from memory, and returns copies the caller cannot spoil', async () => {
    const { store, finds } = countingStore();
    const cached = new ClientCache().wrap('t', store);
    await store.upsert('Client', 'c1', { client_id: 'c1', redirect_uris: ['https://a.example/cb'] });
    const first = await cached.find('Client', 'c1');
    (first?.redirect_uris as string[]).push('https://evil.example/cb');
    expect(await cached.find('Client', 'c1')).toEqual({ client_id: 'c1', redirect_uris: ['https://a.example/cb'] });
    expect(await cached.find('Client', 'nobody')).toBeUndefined();
    expect(await cached.find('Client', 'nobody')).toBeUndefined();
    expect(finds()).toBe(2);
  });

  it('an upsert or destroy through the cache is seen at once and announced', async () => {
    const { store } = countingStore();
    const bus = fakeBus();
    const cache = new ClientCache();
    cache.attachBus(bus);
    const cached = cache.wrap('t', store);
    await cached.upsert('Client', 'c1', { client_id: 'c1', client_secret: 'old' });
    expect(await cached.find('Client', 'c1')).toMatchObject({ client_secret: 'old' });
    await cached.upsert('Client', 'c1', { client_id: 'c1', client_secret: 'new' });
    expect(await cached.find('Client', 'c1')).toMatchObject({ client_secret: 'new' });
    await cached.destroy('Client', 'c1');
    expect(await cached.find('Client', 'c1')).toBeUndefined();
    expect(bus.published).toEqual([['t', 'c1'], ['t', 'c1'], ['t', 'c1']]);
  });

  it('a find in flight while the client changes does not cache the stale answer', async () => {
    const { store, finds, hold } = countingStore();
    const cache = new ClientCache();
    const cached = cache.wrap('t', store);
    await store.upsert('Client', 'c1', { client_id: 'c1', v: 1 });
    const release = hold();
    const stale = cached.find('Client', 'c1');
    await store.upsert('Client', 'c1', { client_id: 'c1', v: 2 });
    cache.invalidate('t', 'c1'); // the announcement arrives while the find is in flight
    release();
    expect(await stale).toMatchObject({ v: 1 });
    expect(await cached.find('Client', 'c1')).toMatchObject({ v: 2 });
    expect(finds()).toBe(2);
  });

  it('caches nothing while the bus is deaf, and keeps at most maxEntries for at most maxAgeMs', async () => {
    const { store, finds } = countingStore();
    const bus = fakeBus();
    let now = 0;
    const cache = new ClientCache({ maxEntries: 2, maxAgeMs: 1000, now: () => now });
    cache.attachBus(bus);
    const cached = cache.wrap('t', store);
    for (const id of ['a', 'b', 'c']) await store.upsert('Client', id, { client_id: id });

    bus.up = false;
    await cached.find('Client', 'a');
    await cached.find('Client', 'a');
    expect(finds()).toBe(2);
    expect(cache.size).toBe(0);

    bus.up = true;
    await cached.find('Client', 'a');
    await cached.find('Client', 'b');
    await cached.find('Client', 'a'); // hit: 'a' is now the most recently used
    await cached.find('Client', 'c'); // evicts 'b'
    expect(cache.size).toBe(2);
    expect(finds()).toBe(5);
    await cached.find('Client', 'a');
    expect(finds()).toBe(5);
    await cached.find('Client', 'b');
    expect(finds()).toBe(6);
    now = 1000; // too old now
    await cached.find('Client', 'b');
    expect(finds()).toBe(7);
  });
});

describe('client change announcements over Redis pub/sub', () => {
  const connections: Redis[] = [];
  afterAll(() => {
    for (const connection of connections) connection.disconnect();
  });

  it('a change announced by one node invalidates the other node\'s cache, and a lost connection stops caching until it is back', async () => {
    const prefix = uniqueRedisPrefix('client-bus');
    const nodes = [0, 1].map(() => {
      const redis = new Redis(testServers().redisUrl);
      connections.push(redis);
      const cache = new ClientCache();
      const bus = createRedisClientChangeBus(redis, {
        prefix,
        onChange: (ns, id) => cache.invalidate(ns, id),
        onListening: () => cache.clear(),
        onDeaf: () => cache.clear(),
      });
      cache.attachBus(bus);
      return { cache, bus };
    });
    const [a, b] = nodes;
    if (a === undefined || b === undefined) throw new Error('two nodes expected');
    expect(await a.bus.ready(5000)).toBe(true);
    expect(await b.bus.ready(5000)).toBe(true);

    const shared = createMemoryModelStores().forNamespace('t');
    const storeA = a.cache.wrap('t', shared);
    const storeB = b.cache.wrap('t', shared);
    await storeA.upsert('Client', 'c1', { client_id: 'c1', client_secret: 'old' });
    expect(await storeB.find('Client', 'c1')).toMatchObject({ client_secret: 'old' });
    expect(b.cache.size).toBe(1);

    await storeA.upsert('Client', 'c1', { client_id: 'c1', client_secret: 'new' });
    // Pub/sub delivery: poll up to one second.
    const deadline = Date.now() + 1000;
    while (b.cache.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await storeB.find('Client', 'c1')).toMatchObject({ client_secret: 'new' });

    // The subscription connection dies (a Redis restart, a network cut): B stops caching at
    // once, and when ioredis has reconnected and resubscribed it starts afresh.
    const admin = new Redis(testServers().redisUrl);
    connections.push(admin);
    const list = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
    const ids = list.split('\n').filter((line) => line.includes(`name=${prefix}:client-changed-subscriber`)).map((line) => /\bid=(\d+)/.exec(line)?.[1]);
    expect(ids).toHaveLength(2);
    await admin.client('KILL', 'ID', String(ids[1]));
    const poll = async (until: () => boolean) => {
      const end = Date.now() + 5000;
      while (!until() && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 5));
      return until();
    };
    const deafOne = () => (a.bus.listening() ? b : a);
    expect(await poll(() => !a.bus.listening() || !b.bus.listening())).toBe(true);
    const deaf = deafOne();
    const deafStore = deaf === a ? storeA : storeB;
    expect(deaf.cache.size).toBe(0);
    await deafStore.find('Client', 'c1');
    expect(await poll(() => deaf.bus.listening())).toBe(true);
    expect(deaf.cache.size).toBe(0); // dropped when listening again
    await deafStore.find('Client', 'c1');
    expect(deaf.cache.size).toBe(1);
    // And it hears announcements again.
    await storeA.upsert('Client', 'c1', { client_id: 'c1', client_secret: 'newer' });
    expect(await poll(() => deaf.cache.size === 0)).toBe(true);

    await b.bus.close(); // deaf from now on
    expect(b.bus.listening()).toBe(false);
    await storeB.find('Client', 'c1');
    expect(b.cache.size).toBe(0);
    await a.bus.close();
  });
});
