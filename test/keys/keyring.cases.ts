import {
  createLocalJWKSet,
  decodeProtectedHeader,
  importJWK,
  jwtVerify,
  SignJWT,
  type JWK,
} from 'jose';
import { describe, expect, it } from 'vitest';

import { KeyDecryptionError, NoNextKeyError } from '../../src/keys/errors.ts';
import { createKeyring, type Keyring, type KeySummary } from '../../src/keys/keyring.ts';
import { createLocalKeyWrapper, generateKeyEncryptionKey, type KeyWrapper } from '../../src/keys/kms.ts';
import type { SigningAlg, SigningKeyStore } from '../../src/keys/signing-key-store.ts';
import { testClock, type TestClock } from './test-clock.ts';

export interface KeyringHarness {
  readonly store: SigningKeyStore;
  /** The key document exactly as the backend holds it (for plaintext checks). */
  rawKeyDocument(kid: string): Promise<unknown>;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const;
const HOUR = 3600;
const retention = { retentionSeconds: HOUR };

function statesOf(summaries: readonly KeySummary[], alg: SigningAlg): Record<string, string> {
  return Object.fromEntries(summaries.filter((s) => s.alg === alg).map((s) => [s.kid, s.state]));
}

function publicJwks(keys: readonly JWK[]): { keys: JWK[] } {
  return {
    keys: keys.map((k) => {
      const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = k;
      return pub;
    }),
  };
}

async function signWith(jwk: JWK): Promise<string> {
  return new SignJWT({ sub: 'alice' })
    .setProtectedHeader({ alg: jwk.alg!, kid: jwk.kid! })
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(await importJWK(jwk, jwk.alg));
}

/**
 * The keyring's behaviour on one SigningKeyStore backend; run once per backend with a
 * fresh (empty) store per test.
 */
export function describeKeyringContract(name: string, makeHarness: () => Promise<KeyringHarness>): void {
  describe(`keyring on ${name}`, () => {
    const wrapper: KeyWrapper = createLocalKeyWrapper(generateKeyEncryptionKey());

    async function setup(clock = testClock()): Promise<KeyringHarness & { keyring: Keyring; clock: TestClock }> {
      const harness = await makeHarness();
      return { ...harness, clock, keyring: createKeyring({ store: harness.store, wrapper, now: clock.now }) };
    }

    it('creates one active RS256 and one ES256 key, idempotently', async () => {
      const { keyring, store } = await setup();
      const first = await keyring.ensureActiveKeys('acme');
      expect(Object.keys(first).sort()).toEqual(['ES256', 'RS256']);
      expect(await keyring.ensureActiveKeys('acme')).toEqual(first);
      expect((await store.listKeys('acme')).map((k) => k.kid).sort()).toEqual(Object.values(first).sort());
      const summaries = await keyring.describeKeys('acme', retention);
      expect(summaries.map((s) => s.state)).toEqual(['active', 'active']);
    });

    it('stores no plaintext private key material', async () => {
      const { keyring, store, rawKeyDocument } = await setup();
      await keyring.ensureActiveKeys('acme', ['RS256', 'ES256', 'EdDSA']);
      const { jwks } = await keyring.loadSigningKeys('acme', retention);
      expect(jwks.keys).toHaveLength(3);
      for (const jwk of jwks.keys) {
        const raw = JSON.stringify(await rawKeyDocument(jwk.kid!));
        expect(raw).toContain(jwk.kid);
        const secrets = PRIVATE_MEMBERS.map((m) => jwk[m]).filter((v): v is string => typeof v === 'string');
        expect(secrets.length).toBe(jwk.kty === 'RSA' ? 6 : 1);
        for (const secret of secrets) expect(raw).not.toContain(secret);
        const record = await store.getKey(jwk.kid!);
        for (const member of PRIVATE_MEMBERS) expect(record?.publicJwk).not.toHaveProperty(member);
      }
    });

    it('fails with KEY_DECRYPTION_FAILED under a different key-encryption key', async () => {
      const { keyring, store } = await setup();
      await keyring.ensureActiveKeys('acme');
      const stranger = createKeyring({ store, wrapper: createLocalKeyWrapper(generateKeyEncryptionKey()) });
      const error = await stranger.loadSigningKeys('acme', retention).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KeyDecryptionError);
      expect(error).toMatchObject({ code: 'KEY_DECRYPTION_FAILED' });
    });

    it('keeps tenants apart', async () => {
      const { keyring } = await setup();
      const acme = await keyring.ensureActiveKeys('acme');
      const globex = await keyring.ensureActiveKeys('globex');
      expect(acme.RS256).not.toBe(globex.RS256);
      const { jwks } = await keyring.loadSigningKeys('globex', retention);
      expect(jwks.keys.map((k) => k.kid).sort()).toEqual(Object.values(globex).sort());
    });

    it('elects exactly one active key per alg when 20 keyrings race on an empty store', async () => {
      const { store } = await setup();
      let wins = 0;
      let losses = 0;
      const counting: SigningKeyStore = {
        ...store,
        async tryActivate(activation) {
          const won = await store.tryActivate(activation);
          if (won) wins++;
          else losses++;
          return won;
        },
      };
      const keyrings = Array.from({ length: 20 }, () => createKeyring({ store: counting, wrapper }));
      const results = await Promise.all(keyrings.map((k) => k.ensureActiveKeys('acme')));
      for (const alg of ['RS256', 'ES256'] as const) {
        expect(new Set(results.map((r) => r[alg])).size).toBe(1);
      }
      const summaries = await keyrings[0]!.describeKeys('acme', retention);
      expect(summaries.filter((s) => s.state === 'active').map((s) => s.kid).sort())
        .toEqual([results[0]!.RS256, results[0]!.ES256].sort());
      expect(wins).toBe(2);
      expect(losses).toBeGreaterThan(0); // a real race happened
      // Losers deleted their candidates.
      expect(summaries).toHaveLength(2);
      expect((await store.listActivations('acme', 'RS256')).map((a) => a.generation)).toEqual([1]);
    });

    it('publishes private JWKs for oidc-provider: active first without key_ops, others verify-only', async () => {
      const { keyring } = await setup();
      const active = await keyring.ensureActiveKeys('acme');
      const nextKid = await keyring.prepareNext('acme', 'ES256');
      const { jwks, keys } = await keyring.loadSigningKeys('acme', retention);
      expect(jwks.keys.map((k) => k.kid)).toEqual([active.RS256, active.ES256, nextKid]);
      const [rs, es, next] = jwks.keys;
      expect(rs).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
      expect(es).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      expect(next).toMatchObject({ kty: 'EC', alg: 'ES256', use: 'sig', key_ops: ['verify'] });
      for (const k of [rs, es]) expect(k).not.toHaveProperty('key_ops');
      for (const k of jwks.keys) expect(typeof k.d).toBe('string');
      expect(Buffer.from(rs!.n!, 'base64url').length * 8).toBe(2048);
      expect(statesOf(keys, 'ES256')).toEqual({ [active.ES256!]: 'active', [nextKid]: 'next' });
    });

    it('activates a prepared next key and retires the old one', async () => {
      const { keyring, clock } = await setup();
      const { ES256: first } = await keyring.ensureActiveKeys('acme', ['ES256']);
      await expect(keyring.activateNext('acme', 'ES256')).rejects.toBeInstanceOf(NoNextKeyError);
      const nextKid = await keyring.prepareNext('acme', 'ES256');
      clock.advance(60);
      const result = await keyring.activateNext('acme', 'ES256');
      expect(result).toEqual({ alg: 'ES256', kid: nextKid, generation: 2, won: true });
      const summaries = await keyring.describeKeys('acme', retention);
      expect(statesOf(summaries, 'ES256')).toEqual({ [first!]: 'retired', [nextKid]: 'active' });
      await expect(keyring.activateNext('acme', 'ES256')).rejects.toMatchObject({ code: 'NO_NEXT_KEY' });
    });

    it('rotates: the new key signs, the old stays published until retention passes, then disappears', async () => {
      const { keyring, clock, store } = await setup();
      const { RS256: old } = await keyring.ensureActiveKeys('acme', ['RS256']);
      clock.advance(600);
      const rotated = await keyring.rotate('acme', 'RS256');
      expect(rotated).toMatchObject({ alg: 'RS256', generation: 2, won: true });
      expect(rotated.kid).not.toBe(old);
      const rotatedAt = clock.now();

      let set = await keyring.loadSigningKeys('acme', retention);
      expect(set.jwks.keys.map((k) => [k.kid, k.key_ops])).toEqual([[rotated.kid, undefined], [old, ['verify']]]);
      const retired = set.keys.find((s) => s.kid === old);
      expect(retired).toMatchObject({ state: 'retired', retiredAt: rotatedAt, removeAt: new Date(rotatedAt.getTime() + HOUR * 1000) });

      clock.advance(HOUR - 1);
      set = await keyring.loadSigningKeys('acme', retention);
      expect(set.jwks.keys.map((k) => k.kid)).toEqual([rotated.kid, old]);
      expect(await keyring.removeExpiredKeys('acme', retention)).toEqual([]);

      clock.advance(1);
      set = await keyring.loadSigningKeys('acme', retention);
      expect(set.jwks.keys.map((k) => k.kid)).toEqual([rotated.kid]);
      expect(statesOf(set.keys, 'RS256')).toEqual({ [old!]: 'removed', [rotated.kid]: 'active' });

      expect(await keyring.removeExpiredKeys('acme', retention)).toEqual([old]);
      expect(await store.getKey(old!)).toBeUndefined();
      expect(statesOf(await keyring.describeKeys('acme', retention), 'RS256')).toEqual({ [rotated.kid]: 'active' });
      // The election record stays: generation 3 comes next, never a second 2.
      expect((await keyring.rotate('acme', 'RS256')).generation).toBe(3);
    });

    it('returns the winner to every caller of concurrent rotations', async () => {
      const { keyring, store } = await setup();
      const { ES256: old } = await keyring.ensureActiveKeys('acme', ['ES256']);
      const results = await Promise.all(Array.from({ length: 10 }, () => keyring.rotate('acme', 'ES256')));
      expect(new Set(results.map((r) => r.kid)).size).toBe(1);
      expect(results.filter((r) => r.won)).toHaveLength(1);
      expect(results.every((r) => r.generation === 2)).toBe(true);
      expect((await store.listKeys('acme')).map((k) => k.kid).sort()).toEqual([old, results[0]!.kid].sort());
    });

    it('verifies a token signed before a restart against the reloaded JWKS, also after rotation', async () => {
      const { keyring, store, clock } = await setup();
      await keyring.ensureActiveKeys('acme');
      const before = await keyring.loadSigningKeys('acme', retention);
      const tokens = await Promise.all(before.jwks.keys.map(signWith));

      const restarted = createKeyring({ store, wrapper, now: clock.now });
      await restarted.ensureActiveKeys('acme');
      const after = await restarted.loadSigningKeys('acme', retention);
      expect(after.jwks.keys).toEqual(before.jwks.keys);
      for (const token of tokens) {
        const { payload } = await jwtVerify(token, createLocalJWKSet(publicJwks(after.jwks.keys)));
        expect(payload.sub).toBe('alice');
      }

      await restarted.rotate('acme', 'ES256');
      const rotated = await restarted.loadSigningKeys('acme', retention);
      for (const token of tokens) {
        await expect(jwtVerify(token, createLocalJWKSet(publicJwks(rotated.jwks.keys)))).resolves.toBeDefined();
      }
      expect(decodeProtectedHeader(tokens[1]!).kid).toBe(before.jwks.keys[1]!.kid);
    });

    it('never activates, and eventually deletes, a candidate its maker failed to delete', async () => {
      const { store, clock } = await setup();
      const sticky: SigningKeyStore = { ...store, deleteKey: async () => { throw new Error('network down'); } };
      const racers = [0, 1].map(() => createKeyring({ store: sticky, wrapper, now: clock.now }));
      const [a, b] = await Promise.all(racers.map((k) => k.ensureActiveKeys('acme', ['ES256'])));
      expect(a).toEqual(b);
      const keyring = createKeyring({ store, wrapper, now: clock.now });
      const orphan = (await keyring.describeKeys('acme', retention)).find((s) => s.state === 'candidate');
      expect(orphan).toMatchObject({ origin: 'election' });
      // A candidate is never published.
      const published = (await keyring.loadSigningKeys('acme', retention)).jwks.keys.map((k) => k.kid);
      expect(published).not.toContain(orphan!.kid);
      await expect(keyring.activateNext('acme', 'ES256')).rejects.toBeInstanceOf(NoNextKeyError);
      expect(await keyring.removeExpiredKeys('acme', retention)).toEqual([]);
      clock.advance(3601);
      expect(await keyring.removeExpiredKeys('acme', retention)).toEqual([orphan!.kid]);
      expect((await keyring.describeKeys('acme', retention)).map((s) => s.state)).toEqual(['active']);
    });

    it('replaces an active key whose document vanished', async () => {
      const { keyring, store } = await setup();
      const { ES256: lost } = await keyring.ensureActiveKeys('acme', ['ES256']);
      await store.deleteKey(lost!);
      const { ES256: replacement } = await keyring.ensureActiveKeys('acme', ['ES256']);
      expect(replacement).not.toBe(lost);
      expect((await store.listActivations('acme', 'ES256')).map((a) => a.generation)).toEqual([1, 2]);
    });

    it('refuses tenant ids that could collide in storage keys', async () => {
      const { keyring } = await setup();
      await expect(keyring.ensureActiveKeys('acme:RS256')).rejects.toThrow(TypeError);
      await expect(keyring.prepareNext('Acme', 'ES256')).rejects.toThrow(TypeError);
    });
  });
}
