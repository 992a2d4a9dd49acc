import { describe, expect, it } from 'vitest';
import { isLoopbackUrl, upstreamIdpsSchema } from './upstream-settings.ts';

const idp = (over: Record<string, unknown> = {}) => ({ id: 'partner', name: 'Partner', issuer: 'https://idp.example', clientId: 'c', ...over });

describe('upstream IdP settings', () => {
  it('takes an https issuer with defaults: enabled, openid email profile, client_secret_basic', () => {
    expect(upstreamIdpsSchema.parse([idp()])).toEqual([{
      ...idp(), enabled: true, scopes: ['openid', 'email', 'profile'], tokenEndpointAuthMethod: 'client_secret_basic',
    }]);
  });

  it('allows plain http only on loopback hosts', () => {
    for (const issuer of ['http://localhost:3000/t/a', 'http://127.0.0.1/t/a', 'http://127.5.6.7:9', 'http://[::1]:8080']) {
      expect(upstreamIdpsSchema.safeParse([idp({ issuer })]).success, issuer).toBe(true);
    }
    for (const issuer of ['http://idp.example', 'http://10.0.0.1', 'http://localhost.example.com', 'http://127.0.0.1.nip.io', 'ftp://idp.example']) {
      expect(upstreamIdpsSchema.safeParse([idp({ issuer })]).success, issuer).toBe(false);
    }
  });

  it('refuses scopes without openid, an issuer with a query, duplicate ids and bad secret variable names', () => {
    expect(upstreamIdpsSchema.safeParse([idp({ scopes: ['email'] })]).success).toBe(false);
    expect(upstreamIdpsSchema.safeParse([idp({ issuer: 'https://idp.example/?x=1' })]).success).toBe(false);
    expect(upstreamIdpsSchema.safeParse([idp(), idp({ name: 'Again' })]).success).toBe(false);
    expect(upstreamIdpsSchema.safeParse([idp({ clientSecretEnv: 'lower-case' })]).success).toBe(false);
  });

  it('knows loopback URLs', () => {
    expect(isLoopbackUrl(new URL('http://localhost'))).toBe(true);
    expect(isLoopbackUrl(new URL('http://127.0.0.1'))).toBe(true);
    expect(isLoopbackUrl(new URL('http://[::1]'))).toBe(true);
    expect(isLoopbackUrl(new URL('http://0.0.0.0'))).toBe(false);
    expect(isLoopbackUrl(new URL('https://example.com'))).toBe(false);
  });
});
