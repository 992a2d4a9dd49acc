import { describe, expect, it } from 'vitest';
import { createAccountService } from '../../accounts/accounts.ts';
import { createMemoryUpstreamLinkStore } from '../../accounts/upstream-links.memory.ts';
import { createMemoryUserStore } from '../../accounts/user-store.memory.ts';
import { linkedUserId, profileClaims } from './upstream-accounts.ts';

const ISSUER = 'https://idp.example';
const fastHasher = {
  hash: async (p: string) => `$argon2id$fake$${p}`,
  verify: async (h: string, p: string) => h === `$argon2id$fake$${p}`,
  verifyDummy: async () => {},
};

function deps() {
  return { accounts: createAccountService({ users: createMemoryUserStore(), hasher: fastHasher }), upstreamLinks: createMemoryUpstreamLinkStore() };
}

describe('linking upstream identities to local users', () => {
  it('creates a passwordless user with the profile on the first sign-in, and finds it by the link afterwards', async () => {
    const d = deps();
    const identity = { tenant: 'acme', idp: 'partner', issuer: ISSUER, subject: 'sub-1' };
    let profileCalls = 0;
    const profile = async () => {
      profileCalls += 1;
      return { name: 'Alice', email: 'alice@example.com', email_verified: true };
    };
    const first = await linkedUserId(d, identity, profile);
    expect(first.created).toBe(true);
    expect(await d.accounts.findById('acme', first.userId)).toMatchObject({ login: 'partner:sub-1', claims: { name: 'Alice', email: 'alice@example.com' } });
    expect(await linkedUserId(d, identity, profile)).toEqual({ userId: first.userId, created: false });
    expect(profileCalls).toBe(1);
  });

  it('never adopts an existing local account, even one holding the login it would get', async () => {
    const d = deps();
    const squatter = await d.accounts.create({ tenant: 'acme', login: 'partner:sub-2', password: 'long enough password' });
    const byEmail = await d.accounts.create({ tenant: 'acme', login: 'bob', claims: { email: 'bob@example.com', email_verified: true } });
    const { userId } = await linkedUserId(d, { tenant: 'acme', idp: 'partner', issuer: ISSUER, subject: 'sub-2' }, async () => ({ email: 'bob@example.com', email_verified: true }));
    expect(userId).not.toBe(squatter.id);
    expect(userId).not.toBe(byEmail.id);
    expect((await d.accounts.findById('acme', userId))?.login).toMatch(/^partner:sub-2:[A-Za-z0-9_-]{8}$/);
  });

  it('gives a subject that is no fine login a hashed login', async () => {
    const d = deps();
    const { userId } = await linkedUserId(d, { tenant: 'acme', idp: 'partner', issuer: ISSUER, subject: 'has space' }, async () => ({}));
    expect((await d.accounts.findById('acme', userId))?.login).toMatch(/^partner:[A-Za-z0-9_-]{43}$/);
  });
});

describe('profile claims copied from the upstream', () => {
  it('keeps name and e-mail claims of the right types, userinfo over id_token, and drops everything else', () => {
    expect(profileClaims(
      { sub: 'x', iss: 'y', name: 'Old', email: 'a@example.com', email_verified: true, groups: ['admin'], picture: 'https://x' },
      { name: 'New', given_name: 42, family_name: '  ', email_verified: 'yes' },
    )).toEqual({ name: 'New', email: 'a@example.com' });
    expect(profileClaims({ email_verified: true })).toEqual({});
    expect(profileClaims({ email: 'not an address', email_verified: false })).toEqual({});
  });
});
