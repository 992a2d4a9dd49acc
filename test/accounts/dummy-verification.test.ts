import * as argon2 from '@node-rs/argon2';
import { describe, expect, it, vi } from 'vitest';

import { createAccountService } from '../../src/accounts/accounts.ts';
import { createPasswordHasher } from '../../src/accounts/passwords.ts';
import { createMemoryUserStore } from '../../src/accounts/user-store.memory.ts';

// Pass-through spy: every argon2 verification really runs, and the test sees its hash.
vi.mock('@node-rs/argon2', async (importOriginal) => {
  const original = await importOriginal<typeof import('@node-rs/argon2')>();
  return { ...original, verify: vi.fn(original.verify) };
});

/** The PHC parameter part of an argon2 hash: `$argon2id$v=19$m=…,t=…,p=…$`. */
function costOf(phc: string): string {
  return phc.split('$').slice(1, 4).join('$');
}

describe('a sign-in for an unknown login', () => {
  // Not a timing test (timing belongs in benchmarks): the same work is proven instead. An
  // unknown login runs one real argon2id verification against a hash of the same algorithm,
  // version and cost as a stored password's, so it takes what a wrong password takes.
  it('runs one argon2id verification at the cost of a real password check', async () => {
    const users = createMemoryUserStore();
    const accounts = createAccountService({ users, hasher: createPasswordHasher() });
    await accounts.create({ tenant: 'acme', login: 'alice', password: 'correct horse' });
    const stored = (await users.findByLogin('acme', 'alice'))?.passwordHash ?? '';
    const verify = vi.mocked(argon2.verify);

    verify.mockClear();
    expect(await accounts.verifyPassword('acme', 'alice', 'wrong horse')).toBeUndefined();
    expect(verify).toHaveBeenCalledTimes(1);
    expect(verify.mock.calls[0]?.[0]).toBe(stored);

    for (const login of ['nobody', 'NOBODY-else']) {
      verify.mockClear();
      expect(await accounts.verifyPassword('acme', login, 'wrong horse')).toBeUndefined();
      expect(verify).toHaveBeenCalledTimes(1);
      const dummy = String(verify.mock.calls[0]?.[0]);
      expect(dummy).not.toBe(stored);
      expect(costOf(dummy)).toBe(costOf(stored));
      expect(costOf(dummy)).toMatch(/^argon2id\$v=19\$m=19456,t=2,p=1$/);
    }
  });
});
