import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createMemoryOneTimeMarks, type OneTimeMarks } from '../../src/storage/one-time-marks.ts';
import { createMongoOneTimeMarks } from '../../src/storage/mongo/one-time-marks.ts';
import { createRedisOneTimeMarks } from '../../src/storage/redis/one-time-marks.ts';
import { useFreshMongoDatabases } from '../keys/mongo-databases.ts';
import { deleteRedisKeys, testServers, uniqueRedisPrefix } from '../support/servers.ts';

const freshDb = useFreshMongoDatabases('one_time_marks');
const redisPrefix = uniqueRedisPrefix('one-time-marks');
let redis: Redis | undefined;
afterAll(async () => {
  if (redis === undefined) return;
  await deleteRedisKeys(redis, redisPrefix);
  redis.disconnect();
});

const backends: Array<[string, () => Promise<OneTimeMarks>]> = [
  ['memory', async () => createMemoryOneTimeMarks()],
  ['Redis', async () => createRedisOneTimeMarks((redis ??= new Redis(testServers().redisUrl)), redisPrefix)],
  ['FerretDB', async () => {
    const marks = createMongoOneTimeMarks(freshDb());
    await marks.ensureIndexes();
    return marks;
  }],
];

for (const [name, open] of backends) {
  describe(`one-time marks on ${name}`, () => {
    it('lets exactly one of 50 concurrent claims of a key win, and no later one', async () => {
      const marks = await open();
      const results = await Promise.all(Array.from({ length: 50 }, () => marks.claim('totp:acme:u1:e1:57000000', 120)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await marks.claim('totp:acme:u1:e1:57000000', 120)).toBe(false);
    });

    it('keeps keys apart', async () => {
      const marks = await open();
      expect(await marks.claim('k:a', 60)).toBe(true);
      expect(await marks.claim('k:b', 60)).toBe(true);
      expect(await marks.claim('k:a', 60)).toBe(false);
    });
  });
}

describe('one-time marks in memory', () => {
  it('forgets a mark after its TTL', async () => {
    let now = 1_000_000;
    const marks = createMemoryOneTimeMarks(() => now);
    expect(await marks.claim('k', 30)).toBe(true);
    now += 29_000;
    expect(await marks.claim('k', 30)).toBe(false);
    now += 2_000;
    expect(await marks.claim('k', 30)).toBe(true);
  });
});
