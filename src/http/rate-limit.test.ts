import { describe, expect, it } from 'vitest';
import { tenantSettingsSchema } from '../tenants/tenant-settings.ts';
import { credentialedClientOf, rateLimitedEndpointOf } from './rate-limit.ts';
import { createMemoryEndpointLimitCounters } from './rate-limit-store.ts';

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('rateLimitedEndpointOf', () => {
  it('names the limited endpoints and nothing else', () => {
    expect(rateLimitedEndpointOf('POST', '/token')).toBe('token');
    expect(rateLimitedEndpointOf('POST', '/token/introspection')).toBe('introspection');
    expect(rateLimitedEndpointOf('POST', '/token/revocation')).toBe('revocation');
    expect(rateLimitedEndpointOf('POST', '/device/auth')).toBe('deviceAuthorization');
    expect(rateLimitedEndpointOf('POST', '/reg')).toBe('registration');
    expect(rateLimitedEndpointOf('PUT', '/reg/some-client')).toBe('registration');
    expect(rateLimitedEndpointOf('POST', '/interaction/abc/login')).toBe('login');
    expect(rateLimitedEndpointOf('POST', '/account/security')).toBe('login');
    expect(rateLimitedEndpointOf('OPTIONS', '/reg')).toBeUndefined();
    expect(rateLimitedEndpointOf('GET', '/token')).toBeUndefined();
    expect(rateLimitedEndpointOf('GET', '/interaction/abc/login')).toBeUndefined();
    expect(rateLimitedEndpointOf('POST', '/interaction/abc/confirm')).toBeUndefined();
    expect(rateLimitedEndpointOf('POST', '/device')).toBeUndefined();
    expect(rateLimitedEndpointOf('GET', '/jwks')).toBeUndefined();
  });
});

describe('credentialedClientOf', () => {
  it('reads the client of client_secret_basic, client_secret_post and private_key_jwt requests', () => {
    expect(credentialedClientOf(basic('svc:1 +~', 's:e c'), undefined)).toBe('svc:1 +~');
    expect(credentialedClientOf('', new URLSearchParams({ client_id: 'svc', client_secret: 'x' }))).toBe('svc');
    const assertion = `e30.${Buffer.from(JSON.stringify({ sub: 'jwt-client' })).toString('base64url')}.sig`;
    const type = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
    expect(credentialedClientOf('', new URLSearchParams({ client_assertion: assertion, client_assertion_type: type }))).toBe('jwt-client');
    expect(credentialedClientOf('', new URLSearchParams({ client_id: 'named', client_assertion: assertion, client_assertion_type: type }))).toBe('named');
  });

  it('names no client for public clients and for malformed credentials', () => {
    expect(credentialedClientOf('', new URLSearchParams({ client_id: 'public-app' }))).toBeUndefined();
    expect(credentialedClientOf('', undefined)).toBeUndefined();
    expect(credentialedClientOf('Bearer abc', new URLSearchParams({ client_id: 'x', client_secret: 'y' }))).toBeUndefined();
    expect(credentialedClientOf(`Basic ${Buffer.from('no-colon').toString('base64')}`, undefined)).toBeUndefined();
    expect(credentialedClientOf(`Basic ${Buffer.from('%E0%A4%A:x').toString('base64')}`, undefined)).toBeUndefined();
    expect(credentialedClientOf('', new URLSearchParams({ client_assertion: 'not-a-jwt', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' }))).toBeUndefined();
    expect(credentialedClientOf(basic('x'.repeat(2049), 's'), undefined)).toBeUndefined();
  });
});

describe('endpoint limit counters in memory', () => {
  it('peeks without counting, refuses past the limit with a Retry-After, and takes refunds', async () => {
    const counters = createMemoryEndpointLimitCounters();
    const limit = { points: 2, durationSeconds: 60 };
    expect(await counters.peek('k', limit)).toEqual({ allowed: true });
    expect(await counters.consume('k', limit)).toEqual({ allowed: true });
    expect(await counters.consume('k', limit)).toEqual({ allowed: true });
    expect(await counters.peek('k', limit)).toMatchObject({ allowed: false });
    await counters.refund('k', limit);
    expect(await counters.peek('k', limit)).toEqual({ allowed: true });
    expect(await counters.consume('k', limit)).toEqual({ allowed: true });
    const over = await counters.consume('k', limit);
    expect(over.allowed).toBe(false);
    expect(over.allowed ? 0 : over.retryAfterSeconds).toBeGreaterThan(0);
    expect(over.allowed ? 0 : over.retryAfterSeconds).toBeLessThanOrEqual(60);
  });
});

describe('rateLimits tenant settings', () => {
  it('default to production limits and refuse nonsense', () => {
    const defaults = tenantSettingsSchema.parse({}).rateLimits;
    expect(defaults.enabled).toBe(true);
    expect(defaults.token).toEqual({ perIp: 300, perClient: 6000, windowSeconds: 60 });
    expect(defaults.login).toEqual({ perIp: 60, windowSeconds: 60 });
    expect(tenantSettingsSchema.safeParse({ rateLimits: { token: { perIp: -1 } } }).success).toBe(false);
    expect(tenantSettingsSchema.safeParse({ rateLimits: { token: { windowSeconds: 0 } } }).success).toBe(false);
    expect(tenantSettingsSchema.parse({ rateLimits: { introspection: { perClient: 0 } } }).rateLimits.introspection.perIp).toBe(600);
  });
});
