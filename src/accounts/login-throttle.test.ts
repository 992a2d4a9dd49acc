import { describe, expect, it } from 'vitest';
import { DEFAULT_LOGIN_LIMITS, memoryLoginLimiters, throttledLoginCheck } from './login-throttle.ts';

describe('throttled sign-in checks', () => {
  const verify = async (_tenant: string, login: string, password: string) => (login === 'ann' && password === 'right' ? { id: 'u1' } : undefined);

  it('waits longer after each failure, up to the cap, and not at all on success', async () => {
    const waits: number[] = [];
    const check = throttledLoginCheck(verify, memoryLoginLimiters({ ...DEFAULT_LOGIN_LIMITS, perAccount: 20 }), { ...DEFAULT_LOGIN_LIMITS, perAccount: 20 }, async (ms) => waits.push(ms));
    for (let i = 0; i < 10; i += 1) expect(await check('t', 'bob', 'wrong', '10.0.0.1')).toEqual({ ok: false, reason: 'invalid' });
    expect(waits).toEqual([0, 250, 500, 750, 1000, 1250, 1500, 1750, 2000, 2000]);
    expect(await check('t', 'ann', 'right', '10.0.0.1')).toEqual({ ok: true, user: { id: 'u1' } });
    expect(waits).toHaveLength(10);
  });

  it('locks per login name, case-insensitively, and a success clears the count', async () => {
    const check = throttledLoginCheck(verify, memoryLoginLimiters(), DEFAULT_LOGIN_LIMITS, async () => {});
    for (let i = 0; i < 4; i += 1) await check('t', 'ANN', 'wrong', '10.0.0.2');
    expect((await check('t', 'ann', 'right', '10.0.0.2')).ok).toBe(true);
    for (let i = 0; i < 5; i += 1) await check('t', 'ann', 'wrong', '10.0.0.2');
    expect(await check('t', 'Ann', 'right', '10.0.0.2')).toMatchObject({ ok: false, reason: 'locked', retryAfterSeconds: expect.any(Number) });
    // Another tenant's ann is someone else.
    expect((await check('other', 'ann', 'right', '10.0.0.2')).ok).toBe(true);
  });

  it('locks an address that tries many names', async () => {
    const limits = { ...DEFAULT_LOGIN_LIMITS, perAddress: 3 };
    const check = throttledLoginCheck(verify, memoryLoginLimiters(limits), limits, async () => {});
    for (const name of ['a', 'b', 'c']) await check('t', name, 'wrong', '10.0.0.3');
    expect(await check('t', 'ann', 'right', '10.0.0.3')).toMatchObject({ ok: false, reason: 'locked' });
    expect((await check('t', 'ann', 'right', '10.0.0.4')).ok).toBe(true);
  });
});
