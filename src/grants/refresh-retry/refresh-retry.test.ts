import { describe, expect, it } from 'vitest';
import { createMemoryRetryCache, openAnswer, retryKey, sealAnswer } from './refresh-retry.ts';

describe('kept refresh answers', () => {
  it('open only with the refresh token they were sealed under', () => {
    const sealed = sealAnswer('old-token', { clientId: 'agent', body: { access_token: 'a', refresh_token: 'r' } });
    expect(sealed).not.toContain('access_token');
    expect(openAnswer('old-token', sealed)).toEqual({ clientId: 'agent', body: { access_token: 'a', refresh_token: 'r' } });
    expect(openAnswer('another-token', sealed)).toBeUndefined();
    expect(openAnswer('old-token', `${sealed}x`)).toBeUndefined();
    expect(openAnswer('old-token', 'garbage')).toBeUndefined();
  });

  it('are keyed per tenant and token, and expire', async () => {
    expect(retryKey('a', 't')).not.toBe(retryKey('b', 't'));
    let now = 1_000;
    const cache = createMemoryRetryCache(() => now);
    await cache.set('k', 'v', 500);
    expect(await cache.get('k')).toBe('v');
    now += 501;
    expect(await cache.get('k')).toBeUndefined();
  });
});
