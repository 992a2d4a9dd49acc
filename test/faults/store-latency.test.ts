import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { testServers } from '../support/servers.ts';
import {
  OPEN_TENANT, auditIssued, clientCredentialsLoop, codeFlowLoop, describeLoad, introspectionLoop, newIssued, recordResponses,
  registrationLoop, silentBetween, startFaultProxy, startLoops, untilAllSucceedAfter, type FaultProxy, type ProxyMode, type Workload,
} from './fault-support.ts';

/**
 * Issue #11 item 8, store latency: Redis and the MongoDB-wire server reached through a TCP
 * proxy that delays every chunk or holds everything (a hung server, a black-holed network).
 * Under load, every request must end — success or 503 temporarily_unavailable with
 * Retry-After, never a 500 and never a hang — because every store call is bounded by
 * CASTELLAN_STORE_TIMEOUT_MS (1 s here); and once the store is well again, so is Castellan.
 */

const STORE_TIMEOUT_MS = 1_000;
/** No request may take longer than this (far above the store timeout; a hang is what it catches). */
const REQUEST_BOUND_MS = 15_000;
const RECOVERY_BOUND_MS = 20_000;
/**
 * How long a stall lasts. Every loop must end an iteration in its last part, after the store
 * timeout and a second of slack: 3 s, room for an iteration of a few store timeouts on a
 * loaded machine (a registration once took two: the release after a timed-out admission).
 */
const STALL_MS = 5_000;

let castellan: TestCastellan | undefined;
let redisProxy: FaultProxy | undefined;
let mongoProxy: FaultProxy | undefined;
let w: Workload;

beforeAll(async () => {
  const servers = testServers();
  redisProxy = await startFaultProxy(Number(new URL(servers.redisUrl).port));
  mongoProxy = await startFaultProxy(Number(new URL(servers.mongoUrl).port));
  const env = await testEnvironment('mongo+redis', 'fault_latency');
  castellan = await startTestCastellan('mongo+redis', 'fault_latency', {
    ...env,
    REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`,
    MONGODB_URL: `mongodb://127.0.0.1:${mongoProxy.port}/`,
    CASTELLAN_STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS),
    // A load test: the endpoint rate limits would refuse the loops (429), not the stores.
    CASTELLAN_RATE_LIMITS: 'false',
  });
  await castellan.running.storage.tenants.create(OPEN_TENANT);
  w = {
    issuer: castellan.issuer,
    registrationIssuer: `${castellan.baseUrl}/t/open`,
    clientSecret: castellan.clientSecret,
    userPassword: castellan.userPassword,
    issued: newIssued(),
  };
});

afterAll(async () => {
  await castellan?.stop();
  await redisProxy?.close();
  await mongoProxy?.close();
});

/** Runs the loops, puts `proxy` in `mode` for `ms`, back to pass, and waits for every loop to succeed again. */
async function underLoad(proxy: FaultProxy, mode: ProxyMode, ms: number) {
  const recorder = recordResponses(castellan?.baseUrl ?? '', { requestTimeoutMs: REQUEST_BOUND_MS });
  const loops = startLoops({
    'client_credentials (opaque)': { count: 3, body: clientCredentialsLoop(w, 'opaque') },
    'client_credentials (JWT)': { count: 1, body: clientCredentialsLoop(w, 'jwt') },
    introspection: { count: 2, body: introspectionLoop(w) },
    'code flow': { count: 2, body: codeFlowLoop(w) },
    registration: { count: 2, body: registrationLoop(w) },
  });
  try {
    const warm = await untilAllSucceedAfter(loops.stats, 0, 20_000);
    expect(warm, describeLoad(recorder.counts, loops.stats)).toEqual([]);
    const before503 = recorder.counts.get(503) ?? 0;
    const from = Date.now();
    proxy.setMode(mode);
    await sleep(ms);
    const during503 = (recorder.counts.get(503) ?? 0) - before503;
    // Every kind of request got an answer in the last part of the fault, after the store timeout.
    const silent = silentBetween(loops.stats, from + STORE_TIMEOUT_MS + 1_000, Date.now());
    proxy.setMode({ kind: 'pass' });
    const lagging = await untilAllSucceedAfter(loops.stats, Date.now(), RECOVERY_BOUND_MS);
    await loops.stop();
    return { during503, silent, lagging, violations: recorder.violations, load: describeLoad(recorder.counts, loops.stats) };
  } finally {
    await loops.stop();
    recorder.restore();
  }
}

describe('stores that are slow or stop answering, under load', () => {
  it('a Redis that answers 300 ms late: success or 503, never a 500 or a hang', async () => {
    const result = await underLoad(redisProxy as FaultProxy, { kind: 'delay', ms: 300 }, 3_000);
    // Slow is allowed (a code flow makes many round trips); hanging past REQUEST_BOUND_MS is not.
    expect(result.violations).toEqual([]);
    expect(result.lagging, result.load).toEqual([]);
  }, 60_000);

  it('a Redis that stops answering: 503 within the store timeout, never a hang; service resumes when it answers again', async () => {
    const result = await underLoad(redisProxy as FaultProxy, { kind: 'stall' }, STALL_MS);
    expect(result.violations).toEqual([]);
    expect(result.during503, result.load).toBeGreaterThan(0);
    expect(result.silent, result.load).toEqual([]);
    expect(result.lagging, result.load).toEqual([]);
  }, 60_000);

  it('a MongoDB-wire server that answers 300 ms late: success or 503, never a 500 or a hang', async () => {
    const result = await underLoad(mongoProxy as FaultProxy, { kind: 'delay', ms: 300 }, 3_000);
    // Slow is allowed (a code flow makes many round trips); hanging past REQUEST_BOUND_MS is not.
    expect(result.violations).toEqual([]);
    expect(result.lagging, result.load).toEqual([]);
  }, 60_000);

  it('a MongoDB-wire server that stops answering: 503 within the store timeout, never a hang; service resumes', async () => {
    const result = await underLoad(mongoProxy as FaultProxy, { kind: 'stall' }, STALL_MS);
    expect(result.violations).toEqual([]);
    expect(result.during503, result.load).toBeGreaterThan(0);
    expect(result.silent, result.load).toEqual([]);
    expect(result.lagging, result.load).toEqual([]);
  }, 60_000);

  it('lost nothing it answered with 200 or 201 through all of the above', async () => {
    const { lost, reusedCodes } = await auditIssued(w);
    expect(w.issued.opaqueTokens.length).toBeGreaterThan(0);
    expect(w.issued.clients.length).toBeGreaterThan(0);
    expect(lost).toEqual([]);
    expect(w.issued.redeemedCodes.length).toBeGreaterThan(0);
    expect(reusedCodes).toEqual([]);
  }, 60_000);
});
