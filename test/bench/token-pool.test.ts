import { describe, expect, it } from 'vitest';
import { TokenPool } from '../../bench/lib/token-pool.ts';

/* The revocation scenario's pools: live tokens handed out once, sized from the measured rate. */

const sizing = { initialRate: 100, duration: 2, margin: 1.25, min: 10, cap: 1000 };
const tokens = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('revocation token pool', () => {
  it('sizes the pool from the previous rate × duration, between the floor and the cap', () => {
    const pool = new TokenPool(sizing);
    expect(pool.goal()).toBe(250);
    pool.add(tokens('a', 250), 0.5);
    for (let i = 0; i < 100; i += 1) pool.take();
    pool.settle({ rps: 50, seconds: 2 }, 250, 2, 5);
    expect(pool.goal()).toBe(125);
    pool.settle({ rps: 1, seconds: 2 }, 150, 2, 5);
    expect(pool.goal()).toBe(10);
    pool.settle({ rps: 10_000, seconds: 2 }, 150, 2, 5);
    expect(pool.goal()).toBe(1000);
  });

  it('hands out each live token once, and keeps what is left for the next measurement', () => {
    const pool = new TokenPool(sizing);
    pool.add(tokens('a', 5), 0.1);
    expect([pool.take(), pool.take()]).toEqual(['a0', 'a1']);
    expect(pool.remaining).toBe(3);
    pool.settle({ rps: 100, seconds: 2 }, 5, 2, 0);
    expect(pool.remaining).toBe(3);
    expect(pool.revokedCount).toBe(2);
    expect(pool.take()).toBe('a2');
  });

  it('does not count as revoked the last tokens of a measurement that ended by time', () => {
    const pool = new TokenPool(sizing);
    pool.add(tokens('a', 20), 0.1);
    for (let i = 0; i < 10; i += 1) pool.take();
    pool.settle({ rps: 5, seconds: 2 }, 20, 2, 4);
    expect(pool.revokedCount).toBe(6);
    expect(tokens('a', 6)).toContain(pool.pickRevoked());
  });

  it('counts a pool used up before the end, and requests past the pool', () => {
    const pool = new TokenPool(sizing);
    pool.add(tokens('a', 3), 0.2);
    for (let i = 0; i < 3; i += 1) pool.take();
    expect(tokens('a', 3)).not.toContain(pool.take());
    pool.settle({ rps: 30, seconds: 0.1 }, 3, 2, 3);
    expect(pool.revokedCount).toBe(3);
    expect(pool.remaining).toBe(0);
    const line = pool.summary('castellan memory');
    expect(line).toContain('live pools of 3–3 tokens');
    expect(line).toContain('used up before the end of 1 of 1 measurements');
    expect(line).toContain('1 live requests past the pool');
    expect(line).toContain('among 3 revoked tokens');
  });
});
