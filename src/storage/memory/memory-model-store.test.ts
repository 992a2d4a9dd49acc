import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryModelStores } from './memory-model-store.ts';

describe('memory model store: incremental sweep', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('removes expired records a few per write, never all at once', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const stores = createMemoryModelStores({ sweepPerWrite: 2 });
    const store = stores.forNamespace('t');
    for (let i = 0; i < 5; i += 1) await store.upsert('AccessToken', `old-${i}`, { jti: `old-${i}`, grantId: 'g' }, 1);
    vi.setSystemTime(new Date('2026-01-01T00:00:10Z'));
    // This write looks at two records at most (where the sweep had got to): at least one of
    // the five expired ones goes now, at least three are left for later writes.
    await store.upsert('AccessToken', 'new', { jti: 'new' }, 60);
    const left = stores.sweepExpired();
    expect(left).toBeGreaterThanOrEqual(3);
    expect(left).toBeLessThan(5);
    expect(await store.find('AccessToken', 'new')).toEqual({ jti: 'new' });
  });

  it('goes round: with enough writes every expired record is removed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const stores = createMemoryModelStores({ sweepPerWrite: 3 });
    const store = stores.forNamespace('t');
    for (let i = 0; i < 10; i += 1) await store.upsert('AccessToken', `old-${i}`, { jti: `old-${i}` }, 1);
    vi.setSystemTime(new Date('2026-01-01T00:00:10Z'));
    for (let i = 0; i < 6; i += 1) await store.upsert('AccessToken', `new-${i}`, { jti: `new-${i}` }, 60);
    expect(stores.sweepExpired()).toBe(0);
    for (let i = 0; i < 6; i += 1) expect(await store.find('AccessToken', `new-${i}`)).toEqual({ jti: `new-${i}` });
  });

  it('hands out copies: changing what find returned never changes the stored record', async () => {
    const store = createMemoryModelStores().forNamespace('t');
    await store.upsert('Grant', 'g1', { jti: 'g1', resources: { 'https://rs.example': 'a' } }, 60);
    const found = await store.find('Grant', 'g1');
    (found?.resources as Record<string, string>)['https://rs.example'] = 'changed';
    expect(await store.find('Grant', 'g1')).toEqual({ jti: 'g1', resources: { 'https://rs.example': 'a' } });
  });
});
