import type { Cluster, Redis } from 'ioredis';
import type { OneTimeMarks } from '../one-time-marks.ts';

/** Marks in Redis: SET NX EX is atomic, so exactly one claimant gets 'OK'. Key: `<prefix>:mark:<key>`. */
export function createRedisOneTimeMarks(redis: Redis | Cluster, prefix: string): OneTimeMarks {
  return {
    async claim(key, ttlSeconds) {
      const result = await redis.set(`${prefix}:mark:${key}`, '1', 'EX', Math.max(1, Math.ceil(ttlSeconds)), 'NX');
      return result === 'OK';
    },
  };
}
