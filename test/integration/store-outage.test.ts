import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { startFerretDb } from '../support/ferretdb.ts';
import { basicAuth, postToken } from '../support/oauth.ts';
import { startRedis } from '../support/redis.ts';
import type { RunningServer } from '../support/running-server.ts';

// Own servers for this file: the shared ones must stay up for every other test.
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function castellanOn(mongo: RunningServer, redis: RunningServer, name: string): Promise<TestCastellan> {
  const env = await testEnvironment('mongo+redis', name);
  const castellan = await startTestCastellan('mongo+redis', name, {
    ...env,
    MONGODB_URL: mongo.url,
    REDIS_URL: redis.url,
    CASTELLAN_KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
  });
  cleanups.push(() => castellan.stop());
  return castellan;
}

describe('a store that goes away', () => {
  it('answers 503 temporarily_unavailable, not 500, when Redis is down, and MongoDB-only requests still work', async () => {
    const mongo = await startFerretDb();
    const redis = await startRedis();
    cleanups.push(() => mongo.stop());
    const castellan = await castellanOn(mongo, redis, 'outage_redis');
    const service = basicAuth('demo-service', castellan.clientSecret);
    await redis.stop();

    // Authorization codes live in Redis.
    const code = await postToken(castellan.issuer, {
      grant_type: 'authorization_code',
      client_id: 'demo-agent',
      code: 'x'.repeat(43),
      redirect_uri: 'http://127.0.0.1:5000/callback',
      code_verifier: 'y'.repeat(43),
    });
    expect(code.status).toBe(503);
    expect(code.body).toMatchObject({ error: 'temporarily_unavailable', error_description: expect.any(String) });

    // Client credentials touch only MongoDB.
    const m2m = await postToken(castellan.issuer, { grant_type: 'client_credentials' }, service);
    expect(m2m.status).toBe(200);
  });

  it('answers 503 temporarily_unavailable when MongoDB is down', async () => {
    const mongo = await startFerretDb();
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const castellan = await castellanOn(mongo, redis, 'outage_mongo');
    const service = basicAuth('demo-service', castellan.clientSecret);
    await mongo.stop();

    const m2m = await postToken(castellan.issuer, { grant_type: 'client_credentials' }, service);
    expect(m2m.status).toBe(503);
    expect(m2m.body.error).toBe('temporarily_unavailable');
    const ready = await fetch(`${castellan.baseUrl}/readyz`);
    expect(ready.status).toBe(503);
  }, 60_000);
});
