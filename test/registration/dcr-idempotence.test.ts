import type { Client } from 'oidc-provider';
import { describe, expect, it } from 'vitest';
import { createMemoryRegistrationAbuseStore } from '../../src/registration/abuse/abuse-store.memory.ts';
import { claimRegistration, clientMatches, registrationFingerprint } from '../../src/registration/abuse/idempotent-registration.ts';

const metadata = {
  client_name: 'Agent',
  redirect_uris: ['http://127.0.0.1/cb', 'http://[::1]/cb'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
  application_type: 'native',
  scope: 'openid notes:read',
};

/** Just what claimRegistration reads of a Client. */
function fakeClient(clientId: string, stored: Record<string, unknown>): Client {
  return { clientId, metadata: () => ({ client_id: clientId, client_id_issued_at: 1, subject_type: 'public', ...stored }) } as unknown as Client;
}

/** A clock that moves only when the code under test sleeps. */
function clock(start = 1_000_000): { now: () => number; sleep: (ms: number) => Promise<void> } {
  let t = start;
  return { now: () => t, sleep: async (ms) => { t += ms; } };
}

describe('registration fingerprints', () => {
  it('ignore the order of set-like members and scopes, and nothing else', () => {
    const fingerprint = registrationFingerprint(metadata);
    expect(registrationFingerprint({
      scope: 'notes:read openid',
      redirect_uris: ['http://[::1]/cb', 'http://127.0.0.1/cb'],
      grant_types: ['refresh_token', 'authorization_code'],
      application_type: 'native',
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      client_name: 'Agent',
    })).toBe(fingerprint);
    expect(registrationFingerprint({ ...metadata, client_name: 'Agent 2' })).not.toBe(fingerprint);
    expect(registrationFingerprint({ ...metadata, redirect_uris: ['http://127.0.0.1/cb'] })).not.toBe(fingerprint);
    expect(registrationFingerprint({ ...metadata, logo_uri: 'https://agent.example/logo.png' })).not.toBe(fingerprint);
  });

  it('a stored client matches when every requested member is equal, whatever oidc-provider added', () => {
    expect(clientMatches(metadata, { ...metadata, client_id: 'c', id_token_signed_response_alg: 'RS256' })).toBe(true);
    expect(clientMatches(metadata, { ...metadata, client_name: 'Renamed' })).toBe(false);
    expect(clientMatches(metadata, { ...metadata, scope: undefined })).toBe(false);
  });
});

describe('claiming a registration', () => {
  it('claims a new fingerprint, and finds the client holding it the next time', async () => {
    const abuse = createMemoryRegistrationAbuseStore();
    const clients = new Map<string, Client>();
    const deps = { abuse, findClient: async (id: string) => clients.get(id), ...clock() };
    const first = await claimRegistration(deps, 't', metadata, 'c1');
    expect(first).toEqual({ kind: 'new', fingerprint: registrationFingerprint(metadata) });
    clients.set('c1', fakeClient('c1', metadata));
    const second = await claimRegistration(deps, 't', metadata, 'c2');
    expect(second.kind).toBe('existing');
    if (second.kind === 'existing') expect(second.client.clientId).toBe('c1');
  });

  it('waits for a client still being registered by a concurrent request', async () => {
    const abuse = createMemoryRegistrationAbuseStore();
    const time = clock();
    await abuse.claimFingerprint('t', registrationFingerprint(metadata), 'c1', time.now());
    let lookups = 0;
    const findClient = async (id: string) => {
      lookups += 1;
      return lookups >= 3 ? fakeClient(id, metadata) : undefined;
    };
    const outcome = await claimRegistration({ abuse, findClient, ...time }, 't', metadata, 'c2');
    expect(outcome.kind).toBe('existing');
    expect(lookups).toBe(3);
  });

  it('replaces a claim whose client never appeared, or whose client has changed since', async () => {
    const abuse = createMemoryRegistrationAbuseStore();
    const fingerprint = registrationFingerprint(metadata);
    const time = clock();
    await abuse.claimFingerprint('t', fingerprint, 'failed', time.now() - 60_000);
    const gone = await claimRegistration({ abuse, findClient: async () => undefined, ...time }, 't', metadata, 'c2');
    expect(gone).toEqual({ kind: 'new', fingerprint });
    expect((await abuse.claimFingerprint('t', fingerprint, 'x', 0)).clientId).toBe('c2');

    const changed = async (id: string) => fakeClient(id, { ...metadata, client_name: 'Changed by an operator' });
    const replaced = await claimRegistration({ abuse, findClient: changed, ...time }, 't', metadata, 'c3');
    expect(replaced).toEqual({ kind: 'new', fingerprint });
    expect((await abuse.claimFingerprint('t', fingerprint, 'x', 0)).clientId).toBe('c3');
  });

  it('gives up on idempotence, not on the registration, when a claim keeps going stale', async () => {
    const abuse = createMemoryRegistrationAbuseStore();
    // Someone re-claims the fingerprint as soon as it is released, with a client that never matches.
    const stubborn = {
      ...abuse,
      claimFingerprint: async () => ({ clientId: 'other', claimedAt: 0 }),
    };
    const outcome = await claimRegistration(
      { abuse: stubborn, findClient: async (id: string) => fakeClient(id, { client_name: 'x' }), ...clock() },
      't',
      metadata,
      'c1',
    );
    expect(outcome).toEqual({ kind: 'new', fingerprint: undefined });
  });
});
