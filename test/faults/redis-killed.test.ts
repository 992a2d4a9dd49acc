import { afterAll, describe, it } from 'vitest';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { expectKillSurvived, OPEN_TENANT, runKillScenario, startKillableRedis, type KillableServer } from './fault-support.ts';

/**
 * Issue #11 item 8: Redis SIGKILLed while requests run (client_credentials opaque and JWT,
 * introspection, whole code flows, registrations). Castellan (in this process) must answer
 * every request with a success or 503 temporarily_unavailable + Retry-After (never a 500 or a
 * stack), issue nothing it did not store, and serve again once Redis is back on the same
 * port, without a restart. This Redis persists nothing, so what it held (codes, sessions,
 * interactions) is gone after the restart: flows in flight then fail cleanly (4xx); tokens and
 * clients live in MongoDB and must all survive.
 */

/** How long after Redis answers again every kind of request must have succeeded again. */
const RECOVERY_BOUND_MS = 20_000;

let redis: KillableServer | undefined;
let castellan: TestCastellan | undefined;
afterAll(async () => {
  await castellan?.stop();
  await redis?.stop();
});

describe('Redis killed under load', () => {
  it('answers success or 503, loses no token it issued, and recovers without a restart', async () => {
    redis = await startKillableRedis();
    const env = await testEnvironment('mongo+redis', 'fault_redis');
    const started = await startTestCastellan('mongo+redis', 'fault_redis', { ...env, REDIS_URL: redis.url, CASTELLAN_RATE_LIMITS: 'false' });
    castellan = started;
    const result = await runKillScenario(
      { ...started, createOpenTenant: async () => { await started.running.storage.tenants.create(OPEN_TENANT); } },
      redis,
      { downMs: 3_000, recoveryBoundMs: RECOVERY_BOUND_MS },
    );
    expectKillSurvived(result);
  }, 90_000);
});
