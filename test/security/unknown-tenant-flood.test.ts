import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNKNOWN_TENANT_LIMIT } from '../../src/http/rate-limit.ts';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';

/**
 * A flood of made-up tenant ids: each unknown id costs a tenant store read (a scan on
 * FerretDB), and the per-id miss cache does not help against ids that change every time. An
 * address that named UNKNOWN_TENANT_LIMIT.points unknown tenants within the window is refused
 * with 429 and Retry-After before the store is asked again; tenants the node holds stay
 * served to that address; other addresses are not affected.
 */

let castellan: TestCastellan | undefined;
let storeReads = 0;

beforeAll(async () => {
  // Behind a proxy (as in production): each X-Forwarded-For address below is its own client.
  const env = await testEnvironment('mongo+redis', 'tenant_flood');
  castellan = await startTestCastellan('mongo+redis', 'tenant_flood', { ...env, CASTELLAN_TRUST_PROXY: 'true' });
  const tenants = castellan.running.storage.tenants;
  const get = tenants.get.bind(tenants);
  tenants.get = async (id) => {
    storeReads += 1;
    return get(id);
  };
});

afterAll(async () => {
  await castellan?.stop();
});

const discovery = (tenant: string, from: string) => fetch(`${castellan?.baseUrl ?? ''}/t/${tenant}/.well-known/openid-configuration`, {
  headers: { 'x-forwarded-for': from },
});

describe('requests for unknown tenants', () => {
  it('refuses an address that named too many unknown tenants, without asking the store, and serves it known tenants', async () => {
    const attacker = '203.0.113.7';
    expect((await discovery('demo', attacker)).status).toBe(200);
    const { points } = UNKNOWN_TENANT_LIMIT;
    for (let i = 0; i < points; i++) {
      const response = await discovery(`made-up-${i}`, attacker);
      expect(response.status).toBe(404);
    }
    const readsBefore = storeReads;
    const refused = await discovery('made-up-next', attacker);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await refused.json()).toMatchObject({ error: 'too_many_requests' });
    expect(storeReads).toBe(readsBefore);
    // A tenant this node holds is served to the same address.
    expect((await discovery('demo', attacker)).status).toBe(200);
    // Another address is not affected.
    expect((await discovery('made-up-elsewhere', '198.51.100.9')).status).toBe(404);
  });
});
