import { errors } from 'oidc-provider';
import { describe, expect, it } from 'vitest';
import { createMemoryModelStores } from '../../src/storage/memory/memory-model-store.ts';
import { createAdapterFactory, EPHEMERAL_MODELS, type ModelStores } from '../../src/storage/oidc-adapter.ts';

/** Two separate stores, so a test sees which one a model went to. */
function twoStores(): ModelStores {
  return {
    durable: createMemoryModelStores().forNamespace('t'),
    ephemeral: createMemoryModelStores().forNamespace('t'),
  };
}

describe('the oidc-provider adapter router', () => {
  it('sends short-lived models to the ephemeral store and durable ones to the durable store', async () => {
    const stores = twoStores();
    const adapter = createAdapterFactory(stores);
    await adapter('AuthorizationCode').upsert('c1', { grantId: 'g' }, 60);
    await adapter('RefreshToken').upsert('r1', { grantId: 'g' }, 60);
    await adapter('Session').upsert('s1', { uid: 'u1' }, 60);
    expect(await stores.ephemeral.find('AuthorizationCode', 'c1')).toBeDefined();
    expect(await stores.durable.find('AuthorizationCode', 'c1')).toBeUndefined();
    expect(await stores.durable.find('RefreshToken', 'r1')).toBeDefined();
    expect(await stores.ephemeral.find('RefreshToken', 'r1')).toBeUndefined();
    expect(await adapter('Session').findByUid('u1')).toBeDefined();
    expect(EPHEMERAL_MODELS.has('Client')).toBe(false);
    expect(EPHEMERAL_MODELS.has('Grant')).toBe(false);
  });

  it('revokes a grant in both stores whichever model asks', async () => {
    const stores = twoStores();
    const adapter = createAdapterFactory(stores);
    await adapter('AuthorizationCode').upsert('c1', { grantId: 'g' }, 60);
    await adapter('AccessToken').upsert('a1', { grantId: 'g' }, 60);
    await adapter('AccessToken').upsert('a2', { grantId: 'other' }, 60);
    await adapter('RefreshToken').revokeByGrantId('g');
    expect(await adapter('AuthorizationCode').find('c1')).toBeUndefined();
    expect(await adapter('AccessToken').find('a1')).toBeUndefined();
    expect(await adapter('AccessToken').find('a2')).toBeDefined();
  });

  it('lets one consume win and turns the loser into invalid_grant with the grant revoked', async () => {
    const stores = twoStores();
    const adapter = createAdapterFactory(stores);
    await adapter('AuthorizationCode').upsert('c1', { grantId: 'g' }, 60);
    await adapter('AccessToken').upsert('a1', { grantId: 'g' }, 60);
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => adapter('AuthorizationCode').consume('c1')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const losers = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(losers).toHaveLength(9);
    for (const loser of losers) expect(loser.reason).toBeInstanceOf(errors.InvalidGrant);
    expect(await adapter('AccessToken').find('a1')).toBeUndefined();
  });

  it('deletes a Client with everything issued to it, in both stores (RFC 7592 DELETE)', async () => {
    const stores = twoStores();
    const adapter = createAdapterFactory(stores);
    await adapter('Client').upsert('c1', { client_id: 'c1' });
    await adapter('Client').upsert('c2', { client_id: 'c2' });
    await adapter('AuthorizationCode').upsert('code', { clientId: 'c1', grantId: 'g' }, 60);
    await adapter('AccessToken').upsert('a1', { clientId: 'c1', grantId: 'g', accountId: 'u' }, 60);
    await adapter('Grant').upsert('g', { clientId: 'c1', accountId: 'u' }, 60);
    await adapter('RegistrationAccessToken').upsert('rat', { clientId: 'c1' });
    await adapter('AccessToken').upsert('a2', { clientId: 'c2', accountId: 'u' }, 60);

    await adapter('Client').destroy('c1');

    expect(await adapter('Client').find('c1')).toBeUndefined();
    for (const [model, id] of [['AuthorizationCode', 'code'], ['AccessToken', 'a1'], ['Grant', 'g'], ['RegistrationAccessToken', 'rat']] as const) {
      expect(await adapter(model).find(id), model).toBeUndefined();
    }
    expect(await adapter('Client').find('c2')).toBeDefined();
    expect(await adapter('AccessToken').find('a2')).toBeDefined();
  });

  it('lets exactly one of concurrent saves of one ReplayDetection id through (jti single use)', async () => {
    const adapter = createAdapterFactory(twoStores());
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => adapter('ReplayDetection').upsert('jti-1', { iss: 'c' }, 60)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((x): x is PromiseRejectedResult => x.status === 'rejected')) {
      expect(r.reason).toBeInstanceOf(errors.InvalidClient);
    }
  });

  it('refuses a model name oidc-provider does not have', () => {
    expect(() => createAdapterFactory(twoStores())('NotAModel')).toThrow(/unknown model/);
  });
});
