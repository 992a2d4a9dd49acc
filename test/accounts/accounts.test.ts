import { parseOptions } from '@node-rs/argon2';
import { describe, expect, it } from 'vitest';

import { createAccountService } from '../../src/accounts/accounts.ts';
import { createPasswordHasher, type PasswordHasher } from '../../src/accounts/passwords.ts';
import { createMemoryUserStore } from '../../src/accounts/user-store.memory.ts';

/** Counts what the service asks of the hasher. */
function spyHasher(inner: PasswordHasher) {
  const calls = { hash: 0, verify: 0, verifyDummy: 0 };
  const hasher: PasswordHasher = {
    hash: (p) => (calls.hash++, inner.hash(p)),
    verify: (h, p) => (calls.verify++, inner.verify(h, p)),
    verifyDummy: (p) => (calls.verifyDummy++, inner.verifyDummy(p)),
  };
  return { hasher, calls };
}

// One hasher for the file: its dummy hash is made once.
const realHasher = createPasswordHasher();

function setup() {
  const users = createMemoryUserStore();
  const { hasher, calls } = spyHasher(realHasher);
  return { users, calls, accounts: createAccountService({ users, hasher }) };
}

describe('accounts with passwords', () => {
  it('stores an argon2id hash with the stated parameters and never returns it', async () => {
    const { accounts, users } = setup();
    const user = await accounts.create({ tenant: 'acme', login: 'alice', password: 'correct horse', claims: { name: 'Alice' } });
    expect(user).not.toHaveProperty('passwordHash');
    const stored = await users.findById('acme', user.id);
    expect(stored?.passwordHash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(stored?.passwordHash).not.toContain('correct horse');
    expect(parseOptions(stored!.passwordHash!)).toMatchObject({ memoryCost: 19456, timeCost: 2, parallelism: 1, outputLen: 32, saltLen: 16 });
    expect(await accounts.findById('acme', user.id)).toEqual(user);
    expect(await accounts.findByLogin('acme', 'ALICE')).toEqual(user);
  });

  it('returns the user for the right password, on any case of the login', async () => {
    const { accounts } = setup();
    const user = await accounts.create({ tenant: 'acme', login: 'Alice', password: 'correct horse' });
    expect(await accounts.verifyPassword('acme', 'alice', 'correct horse')).toEqual(user);
    expect(await accounts.verifyPassword('acme', 'alice', 'Correct horse')).toBeUndefined();
    expect(await accounts.verifyPassword('globex', 'alice', 'correct horse')).toBeUndefined();
  });

  it('normalises passwords (NFKC) so compatibility forms verify', async () => {
    const { accounts } = setup();
    await accounts.create({ tenant: 'acme', login: 'alice', password: 'ｐａｓｓｗｏｒｄ１２３' });
    expect(await accounts.verifyPassword('acme', 'alice', 'password123')).toBeDefined();
  });

  it('spends one argon2 verification on unknown logins and password-less users', async () => {
    const { accounts, calls } = setup();
    await accounts.create({ tenant: 'acme', login: 'fed' }); // upstream-only user
    expect(await accounts.verifyPassword('acme', 'nobody', 'whatever pw')).toBeUndefined();
    expect(await accounts.verifyPassword('acme', 'fed', 'whatever pw')).toBeUndefined();
    expect(calls).toEqual({ hash: 0, verify: 0, verifyDummy: 2 });
  });

  it('refuses passwords that are too short or too long, without echoing them', async () => {
    const { accounts } = setup();
    const error = await accounts.create({ tenant: 'acme', login: 'alice', password: 'Zq7!x' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'INVALID_USER' });
    expect(String((error as Error).message)).not.toContain('Zq7!x');
    await expect(accounts.create({ tenant: 'acme', login: 'alice', password: 'x'.repeat(1025) })).rejects.toMatchObject({ code: 'INVALID_USER' });
    expect(await accounts.findByLogin('acme', 'alice')).toBeUndefined();
  });

  it('answers undefined to an over-long password without hashing it', async () => {
    const { accounts, calls } = setup();
    await accounts.create({ tenant: 'acme', login: 'alice', password: 'correct horse' });
    expect(await accounts.verifyPassword('acme', 'alice', 'x'.repeat(100_000))).toBeUndefined();
    expect(calls.verify).toBe(1); // the hasher refused it and spent a dummy verification
  });
});
