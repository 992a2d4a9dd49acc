import { describe, expect, it } from 'vitest';
import { CookieJar } from './oauth.ts';

/** A response that sets the given cookies. */
function setting(...cookies: string[]): Response {
  const headers = new Headers();
  for (const cookie of cookies) headers.append('set-cookie', cookie);
  return new Response(null, { status: 204, headers });
}

describe('CookieJar (the test browser\'s cookies, RFC 6265 paths)', () => {
  it('keeps one name under two paths as two cookies, each sent only under its own path', () => {
    const jar = new CookieJar();
    jar.store(setting('_session=demo; path=/t/demo; httponly'), 'http://127.0.0.1:1/t/demo/auth');
    jar.store(setting('_session=upstream; path=/t/upstream; httponly'), 'http://127.0.0.1:1/t/upstream/auth');
    expect(jar.header('http://127.0.0.1:1/t/demo/interaction/abc')).toBe('_session=demo');
    expect(jar.header('http://127.0.0.1:1/t/upstream')).toBe('_session=upstream');
    // /t/demo is not a prefix path of /t/demonstration (RFC 6265 §5.1.4 path-match).
    expect(jar.header('http://127.0.0.1:1/t/demonstration/auth')).toBe('');
    expect(jar.header('http://127.0.0.1:1/')).toBe('');
  });

  it('defaults the path to the setting URL\'s directory, and sends longer paths first', () => {
    const jar = new CookieJar();
    jar.store(setting('a=1'), 'http://127.0.0.1:1/t/demo/interaction/abc');
    jar.store(setting('b=2; Path=relative'), 'http://127.0.0.1:1/top');
    jar.store(setting('c=3; path=/'), 'http://127.0.0.1:1/t/demo/x');
    expect(jar.header('http://127.0.0.1:1/t/demo/interaction/abc/login')).toBe('a=1; b=2; c=3');
    expect(jar.header('http://127.0.0.1:1/t/demo/interaction')).toBe('a=1; b=2; c=3');
    expect(jar.header('http://127.0.0.1:1/t/demo/auth')).toBe('b=2; c=3');
  });

  it('replaces a cookie of the same name and path, and clears it on an expired or empty one', () => {
    const jar = new CookieJar();
    const url = 'http://127.0.0.1:1/t/demo/auth';
    jar.store(setting('s=1; path=/t/demo', 'k=1; path=/t/demo', 'm=1; path=/t/demo'), url);
    jar.store(setting('s=2; path=/t/demo', 'k=; path=/t/demo; expires=Thu, 01 Jan 1970 00:00:00 GMT', 'm=x; path=/t/demo; max-age=0'), url);
    expect(jar.header(url)).toBe('s=2');
  });

  it('without a URL answers as before it knew paths: one cookie a name, the last value set', () => {
    const jar = new CookieJar();
    jar.store(setting('_session=demo; path=/t/demo', 'other=1; path=/'), 'http://127.0.0.1:1/t/demo/auth');
    jar.store(setting('_session=upstream; path=/t/upstream'), 'http://127.0.0.1:1/t/upstream/auth');
    expect(jar.header()).toBe('_session=upstream; other=1');
  });
});
