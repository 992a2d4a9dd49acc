import { describe, expect, it } from 'vitest';

import { InvalidTenantError, type TenantChanges, type TenantStore } from '../../src/tenants/tenant-store.ts';
import { testClock } from '../keys/test-clock.ts';

const settings = { scopes: ['notes:read'], nested: { on: true, n: 3, list: [1, 'two', null] } };

/** The TenantStore contract, run once per backend with a fresh store per test. */
export function describeTenantStoreContract(
  name: string,
  makeStore: (now: () => Date) => Promise<TenantStore>,
): void {
  describe(`tenant store on ${name}`, () => {
    async function setup() {
      const clock = testClock();
      return { clock, store: await makeStore(clock.now) };
    }

    it('creates a tenant once and reads it back', async () => {
      const { store, clock } = await setup();
      expect(await store.create({ id: 'acme', displayName: 'Acme', settings })).toBe(true);
      const tenant = await store.get('acme');
      expect(tenant).toEqual({
        id: 'acme',
        displayName: 'Acme',
        settings,
        revision: expect.stringMatching(/^[A-Za-z0-9_-]{16}$/),
        createdAt: clock.now(),
        updatedAt: clock.now(),
      });
      expect(await store.create({ id: 'acme', displayName: 'Other' })).toBe(false);
      expect(await store.get('acme')).toEqual(tenant);
      expect(await store.get('nobody')).toBeUndefined();
    });

    it('defaults settings to an empty object', async () => {
      const { store } = await setup();
      await store.create({ id: 'bare', displayName: 'Bare' });
      expect((await store.get('bare'))?.settings).toEqual({});
    });

    it('validates tenant ids and display names at create', async () => {
      const { store } = await setup();
      for (const id of ['', 'Acme', '-acme', 'acme_1', 'a:b', 'a/b', 'a'.repeat(64), 'äcme']) {
        const error = await store.create({ id, displayName: 'X' }).catch((e: unknown) => e);
        expect(error, id).toBeInstanceOf(InvalidTenantError);
        expect(error).toMatchObject({ code: 'INVALID_TENANT' });
      }
      await expect(store.create({ id: 'acme', displayName: '   ' })).rejects.toMatchObject({ code: 'INVALID_TENANT' });
      for (const id of ['a', '0', 'acme-1', 'a'.repeat(63)]) {
        expect(await store.create({ id, displayName: 'X' }), id).toBe(true);
      }
      expect(await store.list()).toHaveLength(4);
    });

    it('lets exactly one of 20 concurrent creates of one id win', async () => {
      const { store } = await setup();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.create({ id: 'race', displayName: `Racer ${i}` })),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect((await store.get('race'))?.displayName).toBe(`Racer ${winner}`);
    });

    it('updates with a new random revision and keeps what was not changed', async () => {
      const { store, clock } = await setup();
      await store.create({ id: 'acme', displayName: 'Acme', settings });
      const created = (await store.get('acme'))!;
      clock.advance(10);
      const revision = await store.update('acme', { displayName: 'Acme Corp' });
      expect(revision).toMatch(/^[A-Za-z0-9_-]{16}$/);
      expect(revision).not.toBe(created.revision);
      expect(await store.get('acme')).toEqual({
        ...created,
        displayName: 'Acme Corp',
        revision,
        updatedAt: clock.now(),
      });

      const again = await store.update('acme', { settings: { scopes: [] }, displayName: undefined });
      expect(again).not.toBe(revision);
      const updated = await store.get('acme');
      expect(updated).toMatchObject({ displayName: 'Acme Corp', settings: { scopes: [] }, revision: again });
      expect(updated?.createdAt).toEqual(created.createdAt);
    });

    it('ignores fields update does not own and refuses bad values', async () => {
      const { store } = await setup();
      await store.create({ id: 'acme', displayName: 'Acme' });
      const sneaky = { id: 'other', revision: 'chosen', createdAt: new Date(0) } as unknown as TenantChanges;
      const revision = await store.update('acme', sneaky);
      expect(revision).not.toBe('chosen');
      expect(await store.get('acme')).toMatchObject({ id: 'acme', revision, displayName: 'Acme' });
      expect(await store.get('other')).toBeUndefined();
      await expect(store.update('acme', { displayName: '' })).rejects.toBeInstanceOf(InvalidTenantError);
    });

    it('returns undefined when updating a tenant that does not exist', async () => {
      const { store } = await setup();
      expect(await store.update('ghost', { displayName: 'Ghost' })).toBeUndefined();
      expect(await store.get('ghost')).toBeUndefined();
    });

    it('lists tenants by id', async () => {
      const { store } = await setup();
      for (const id of ['zeta', 'alpha', 'mid']) await store.create({ id, displayName: id });
      expect((await store.list()).map((t) => t.id)).toEqual(['alpha', 'mid', 'zeta']);
    });

    it('hands out copies: changing a returned record changes nothing stored', async () => {
      const { store } = await setup();
      await store.create({ id: 'acme', displayName: 'Acme', settings: { scopes: ['a'] } });
      const tenant = (await store.get('acme'))!;
      (tenant.settings['scopes'] as string[]).push('b');
      expect((await store.get('acme'))?.settings).toEqual({ scopes: ['a'] });
    });
  });
}
