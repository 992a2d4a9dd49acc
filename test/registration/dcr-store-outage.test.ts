import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistrationRefusedError } from '../../src/errors/errors.ts';
import type { RegistrationAbuseStore } from '../../src/registration/abuse/abuse-store.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { OPEN_TENANT } from '../faults/fault-support.ts';

/**
 * A registration whose admission fails because the store cannot be reached answers 503 after
 * that one failure: it does not wait out the outage a second time releasing what it never got
 * (a stalled Redis made such registrations take two store timeouts). A registration refused
 * for any other reason still releases its admission, so refused requests never fill the tenant.
 */

let castellan: TestCastellan | undefined;
let abuse: RegistrationAbuseStore;
const calls = { forget: 0 };

beforeAll(async () => {
  castellan = await startTestCastellan('memory', 'dcr_outage');
  await castellan.running.storage.tenants.create(OPEN_TENANT);
  abuse = castellan.running.storage.registrationAbuse;
  const forget = abuse.forgetClient.bind(abuse);
  abuse.forgetClient = async (tenant, clientId) => {
    calls.forget += 1;
    return forget(tenant, clientId);
  };
});

afterAll(async () => {
  await castellan?.stop();
});

async function register(body: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${castellan?.baseUrl ?? ''}/t/open/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const service = { client_name: 'outage', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic' };

describe('self-registration when the abuse store cannot be reached', () => {
  it('answers 503 after the failed admission, without a release that would wait on the same store', async () => {
    const admit = abuse.admitClient.bind(abuse);
    // What ioredis rejects with when a command outlives its commandTimeout.
    abuse.admitClient = async () => { throw new Error('Command timed out'); };
    try {
      calls.forget = 0;
      const answer = await register(service);
      expect(answer.status).toBe(503);
      expect(answer.body.error).toBe('temporarily_unavailable');
      expect(calls.forget).toBe(0);
    } finally {
      abuse.admitClient = admit;
    }
    expect((await register(service)).status).toBe(201);
  });

  it('still releases the admission when anything else goes wrong after it', async () => {
    const admit = abuse.admitClient.bind(abuse);
    // Admitted, then refused by something that is not a store outage.
    abuse.admitClient = async (...args) => {
      await admit(...args);
      throw new RegistrationRefusedError('refused after admission');
    };
    try {
      calls.forget = 0;
      const before = await abuse.clientCount('open');
      const answer = await register(service);
      expect(answer.status).toBe(403);
      expect(calls.forget).toBe(1);
      expect(await abuse.clientCount('open')).toBe(before);
    } finally {
      abuse.admitClient = admit;
    }
  });
});
