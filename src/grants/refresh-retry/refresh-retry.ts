import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

/**
 * The retry grace of refresh-token rotation: for a few seconds after a public client's
 * refresh token was rotated, presenting it again (a network retry that lost the answer)
 * returns the same new token pair instead of counting as reuse and revoking the grant.
 *
 * The answer is kept sealed with a key derived from the old refresh token itself, under the
 * hash of that token: whoever reads the cache learns nothing without the token, and only a
 * request carrying it can open the answer.
 */
export interface RetryCache {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
}

export function createRedisRetryCache(redis: Redis | Cluster, prefix: string): RetryCache {
  return {
    async get(key) {
      return (await redis.get(`${prefix}:refresh-retry:${key}`)) ?? undefined;
    },
    async set(key, value, ttlMs) {
      await redis.set(`${prefix}:refresh-retry:${key}`, value, 'PX', ttlMs);
    },
  };
}

export function createMemoryRetryCache(now: () => number = Date.now): RetryCache {
  const entries = new Map<string, { value: string; until: number }>();
  return {
    async get(key) {
      const entry = entries.get(key);
      if (!entry || entry.until <= now()) {
        entries.delete(key);
        return undefined;
      }
      return entry.value;
    },
    async set(key, value, ttlMs) {
      for (const [k, e] of entries) if (e.until <= now()) entries.delete(k);
      entries.set(key, { value, until: now() + ttlMs });
    },
  };
}

export interface RetryAnswer {
  clientId: string;
  body: Record<string, unknown>;
}

export function retryKey(tenant: string, refreshToken: string): string {
  return createHash('sha256').update(`${tenant}\0${refreshToken}`).digest('base64url');
}

function keyFrom(refreshToken: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(refreshToken), Buffer.from('castellan refresh retry'), Buffer.alloc(0), 32));
}

export function sealAnswer(refreshToken: string, answer: RetryAnswer): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyFrom(refreshToken), iv);
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(answer), 'utf8'), cipher.final()]);
  return [iv, ciphertext, cipher.getAuthTag()].map((b) => b.toString('base64url')).join('.');
}

export function openAnswer(refreshToken: string, sealed: string): RetryAnswer | undefined {
  const [iv, ciphertext, tag] = sealed.split('.').map((part) => Buffer.from(part, 'base64url'));
  if (!iv || !ciphertext || !tag) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyFrom(refreshToken), iv);
    decipher.setAuthTag(tag);
    const plain = Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    const parsed = JSON.parse(plain) as RetryAnswer;
    return typeof parsed.clientId === 'string' && typeof parsed.body === 'object' ? parsed : undefined;
  } catch {
    return undefined;
  }
}
