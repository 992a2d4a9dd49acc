import { describe, expect, it } from 'vitest';
import { createKeyring } from './keyring.ts';
import { createLocalKeyWrapper, generateKeyEncryptionKey } from './kms.ts';
import { createMemorySigningKeyStore } from './signing-key-store.memory.ts';

const retention = { retentionSeconds: 3600 };

function setup() {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const keyring = createKeyring({
    store: createMemorySigningKeyStore(),
    wrapper: createLocalKeyWrapper(generateKeyEncryptionKey()),
    now: () => new Date(now),
  });
  return { keyring, advance: (seconds: number) => { now += seconds * 1000; } };
}

describe('keyring: emergency withdrawal and generation-bound activation', () => {
  it('withdraws a next key without touching the active one, and an active key after electing its successor', async () => {
    const { keyring } = setup();
    const { ES256: active } = await keyring.ensureActiveKeys('acme', ['ES256']);
    const next = await keyring.prepareNext('acme', 'ES256');
    expect(await keyring.withdrawKey('acme', next, retention)).toEqual({ kid: next, alg: 'ES256', state: 'next' });
    let keys = await keyring.describeKeys('acme', retention);
    expect(keys.map((k) => [k.kid, k.state])).toEqual([[active, 'active']]);

    const withdrawn = await keyring.withdrawKey('acme', active!, retention);
    expect(withdrawn).toMatchObject({ kid: active, state: 'active', replacement: { won: true, generation: 2 } });
    keys = await keyring.describeKeys('acme', retention);
    expect(keys.map((k) => [k.kid, k.state])).toEqual([[withdrawn!.replacement!.kid, 'active']]);
    const { jwks } = await keyring.loadSigningKeys('acme', retention);
    expect(jwks.keys.map((k) => k.kid)).toEqual([withdrawn!.replacement!.kid]);
  });

  it('refuses another tenant\'s key and unknown kids', async () => {
    const { keyring } = setup();
    const { ES256: kid } = await keyring.ensureActiveKeys('acme', ['ES256']);
    expect(await keyring.withdrawKey('other', kid!, retention)).toBeUndefined();
    expect(await keyring.withdrawKey('acme', 'nope', retention)).toBeUndefined();
    expect((await keyring.describeKeys('acme', retention)).map((k) => k.state)).toEqual(['active']);
  });

  it('activateNext at a generation already taken reports the winner; a generation beyond the next is refused', async () => {
    const { keyring, advance } = setup();
    await keyring.ensureActiveKeys('acme', ['ES256']);
    const first = await keyring.prepareNext('acme', 'ES256');
    advance(1); // the oldest prepared key is the one activated
    const spare = await keyring.prepareNext('acme', 'ES256');
    expect(await keyring.activateNext('acme', 'ES256', { generation: 2 })).toEqual({ alg: 'ES256', kid: first, generation: 2, won: true });
    // A second scheduler that read generation 1 as active: no second rotation, the spare stays next.
    expect(await keyring.activateNext('acme', 'ES256', { generation: 2 })).toEqual({ alg: 'ES256', kid: first, generation: 2, won: false });
    expect((await keyring.describeKeys('acme', retention)).find((k) => k.kid === spare)?.state).toBe('next');
    await expect(keyring.activateNext('acme', 'ES256', { generation: 4 })).rejects.toBeInstanceOf(TypeError);
  });
});
