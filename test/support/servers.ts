import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { inject } from 'vitest';

// test/setup/global-setup.ts provides these once per run; inject() reads them in any test.
declare module 'vitest' {
  export interface ProvidedContext {
    mongoUrl: string;
    redisUrl: string;
  }
}

export interface TestServers {
  /** FerretDB (MongoDB wire protocol), e.g. mongodb://127.0.0.1:PORT/ */
  mongoUrl: string;
  /** redis-server, e.g. redis://127.0.0.1:PORT */
  redisUrl: string;
}

/** The servers the global setup started for this run. */
export function testServers(): TestServers {
  const mongoUrl = inject('mongoUrl');
  const redisUrl = inject('redisUrl');
  if (typeof mongoUrl !== 'string' || typeof redisUrl !== 'string') {
    throw new Error('test servers missing: run through vitest with test/setup/global-setup.ts as globalSetup');
  }
  return { mongoUrl, redisUrl };
}

function suffix(): string {
  return `${process.pid.toString(36)}${randomBytes(4).toString('hex')}`;
}

function slug(prefix: string, maxLength: number): string {
  return prefix.toLowerCase().replace(/[^a-z0-9_]+/gu, '_').slice(0, maxLength);
}

/**
 * A database name no other test file (or concurrent run) uses: FerretDB's SQLite backend
 * accepts at most 63 characters of [a-zA-Z0-9_-], and so does every MongoDB.
 */
export function uniqueDbName(prefix: string): string {
  return `${slug(prefix, 40)}_${suffix()}`;
}

/** A Redis key prefix no other test file (or concurrent run) uses; delete its keys after. */
export function uniqueRedisPrefix(prefix: string): string {
  return `${slug(prefix, 40)}-${suffix()}`;
}

/** Deletes every key under `prefix:` (SCAN, not KEYS, so a shared server is not blocked). */
export async function deleteRedisKeys(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 500 })) {
    const batch = keys as string[];
    if (batch.length > 0) deleted += await redis.unlink(...batch);
  }
  return deleted;
}
