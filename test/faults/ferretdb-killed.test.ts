import { afterAll, describe, it } from 'vitest';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { expectKillSurvived, OPEN_TENANT, runKillScenario, startKillableFerretDb, type KillableServer } from './fault-support.ts';

/**
 * Issue #11 item 8: the MongoDB-wire server (FerretDB) SIGKILLed while requests run, then
 * started again on the same port with its same data directory. Every response is a success
 * or 503 temporarily_unavailable + Retry-After; once it is back the same Castellan serves
 * again; and nothing answered with 200/201 (tokens, refresh tokens, registered clients) is
 * lost, nor does a redeemed code redeem again.
 */

const RECOVERY_BOUND_MS = 30_000;

let mongo: KillableServer | undefined;
let castellan: TestCastellan | undefined;
afterAll(async () => {
  await castellan?.stop();
  await mongo?.stop();
});

describe('FerretDB killed under load', () => {
  it('answers success or 503, loses nothing it answered before the kill, and recovers without a restart', async () => {
    mongo = await startKillableFerretDb();
    const env = await testEnvironment('mongo+redis', 'fault_mongo');
    const started = await startTestCastellan('mongo+redis', 'fault_mongo', {
      ...env, MONGODB_URL: mongo.url, CASTELLAN_RATE_LIMITS: 'false',
      // Shorter than the outage, so requests that need MongoDB while it is down end in 503
      // rather than wait (the 10 s default) for it to come back.
      CASTELLAN_STORE_TIMEOUT_MS: '2000',
    });
    castellan = started;
    const result = await runKillScenario(
      { ...started, createOpenTenant: async () => { await started.running.storage.tenants.create(OPEN_TENANT); } },
      mongo,
      { downMs: 3_000, recoveryBoundMs: RECOVERY_BOUND_MS },
    );
    expectKillSurvived(result);
  }, 90_000);
});
