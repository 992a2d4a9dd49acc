import { describe, expect, it } from 'vitest';

import { InvalidUserError, LoginTakenError, type UserStore } from '../../src/accounts/user-store.ts';
import { testClock } from '../keys/test-clock.ts';

const HASH = '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g';

/** The UserStore contract, run once per backend with a fresh store per test. */
export function describeUserStoreContract(name: string, makeStore: (now: () => Date) => Promise<UserStore>): void {
  describe(`user store on ${name}`, () => {
    async function setup() {
      const clock = testClock();
      return { clock, store: await makeStore(clock.now) };
    }

    it('creates a user with a random opaque id and finds it by id and by login', async () => {
      const { store, clock } = await setup();
      const user = await store.create({
        tenant: 'acme',
        login: 'Alice@Example.com',
        passwordHash: HASH,
        claims: { email: 'alice@example.com', email_verified: true, name: 'Alice' },
      });
      expect(user).toEqual({
        tenant: 'acme',
        id: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
        login: 'Alice@Example.com',
        passwordHash: HASH,
        claims: { email: 'alice@example.com', email_verified: true, name: 'Alice' },
        createdAt: clock.now(),
      });
      expect(await store.findById('acme', user.id)).toEqual(user);
      expect(await store.findByLogin('acme', 'alice@example.com')).toEqual(user);
      expect(await store.findByLogin('acme', 'ALICE@EXAMPLE.COM')).toEqual(user);
      const other = await store.create({ tenant: 'acme', login: 'bob' });
      expect(other.id).not.toBe(user.id);
      expect(other).not.toHaveProperty('passwordHash');
      expect(other.claims).toEqual({});
    });

    it('refuses a login taken in the same tenant, whatever its case', async () => {
      const { store } = await setup();
      await store.create({ tenant: 'acme', login: 'alice' });
      const error = await store.create({ tenant: 'acme', login: 'ALICE' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LoginTakenError);
      expect(error).toMatchObject({ code: 'LOGIN_TAKEN' });
      // Another tenant has its own logins.
      await expect(store.create({ tenant: 'globex', login: 'Alice' })).resolves.toMatchObject({ tenant: 'globex' });
    });

    it('lets exactly one of 20 concurrent creates of one login win', async () => {
      const { store } = await setup();
      const logins = Array.from({ length: 20 }, (_, i) => (i % 2 ? 'Carol' : 'carol'));
      const results = await Promise.allSettled(logins.map((login) => store.create({ tenant: 'acme', login })));
      const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      expect(won).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(LoginTakenError);
      }
      expect(await store.findByLogin('acme', 'CAROL')).toEqual(won[0]);
    });

    it('finds nothing across tenants or for unknown ids and logins', async () => {
      const { store } = await setup();
      const user = await store.create({ tenant: 'acme', login: 'alice' });
      expect(await store.findById('globex', user.id)).toBeUndefined();
      expect(await store.findByLogin('globex', 'alice')).toBeUndefined();
      expect(await store.findById('acme', 'nope')).toBeUndefined();
      expect(await store.findByLogin('acme', 'nobody')).toBeUndefined();
    });

    it('treats compatibility forms of a login as the same login', async () => {
      const { store } = await setup();
      const user = await store.create({ tenant: 'acme', login: 'ｄａｖｅ' }); // full-width
      expect(await store.findByLogin('acme', 'Dave')).toEqual(user);
      await expect(store.create({ tenant: 'acme', login: 'DAVE' })).rejects.toBeInstanceOf(LoginTakenError);
    });

    it('validates its input', async () => {
      const { store } = await setup();
      const bad = [
        { tenant: 'Acme', login: 'alice' },
        { tenant: 'acme', login: '' },
        { tenant: 'acme', login: ' alice' },
        { tenant: 'acme', login: 'al\u0000ice' },
        { tenant: 'acme', login: 'a'.repeat(255) },
        { tenant: 'acme', login: 'alice', passwordHash: 'plaintext' },
        { tenant: 'acme', login: 'alice', claims: { sub: 'chosen' } },
      ];
      for (const input of bad) {
        await expect(store.create(input), JSON.stringify(input)).rejects.toBeInstanceOf(InvalidUserError);
      }
      expect(await store.findByLogin('acme', 'alice')).toBeUndefined();
    });

    it('hands out copies: changing a returned record changes nothing stored', async () => {
      const { store } = await setup();
      const user = await store.create({ tenant: 'acme', login: 'alice', claims: { name: 'Alice' } });
      user.claims.name = 'Mallory';
      expect((await store.findById('acme', user.id))?.claims.name).toBe('Alice');
    });

    it('sets, narrows and removes a TOTP enrolment by id, and only for the enrolment it names', async () => {
      const { store, clock } = await setup();
      const user = await store.create({ tenant: 'acme', login: 'erin' });
      const secret = { v: 1 as const, enc: 'A256GCM' as const, iv: 'aXY', ciphertext: 'Y3Q', tag: 'dGFn', wrappedKey: { kekId: 'local:x', alg: 'A256GCM', wrapped: 'd3I' } };
      const totp = { id: 'e1', secret, recoveryCodeHashes: ['h1', 'h2', 'h3'], enabledAt: clock.now() };
      expect(await store.setTotp('acme', user.id, totp)).toBe(true);
      expect((await store.findByLogin('acme', 'ERIN'))?.totp).toEqual(totp);

      await store.setRecoveryCodeHashes('acme', user.id, 'e1', ['h1', 'h3']);
      await store.setRecoveryCodeHashes('acme', user.id, 'an-older-enrolment', []);
      expect((await store.findById('acme', user.id))?.totp?.recoveryCodeHashes).toEqual(['h1', 'h3']);

      expect(await store.setTotp('acme', user.id, undefined)).toBe(true);
      expect(await store.findById('acme', user.id)).toEqual(user);
      expect(await store.setTotp('acme', 'nobody', totp)).toBe(false);
      expect(await store.findById('acme', 'nobody')).toBeUndefined();
    });
  });
}
