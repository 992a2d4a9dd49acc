import { describe, expect, it } from 'vitest';
import {
  classifyAddress,
  createAddressPolicy,
  isValidNetworkAllowlistEntry,
  type AddressClass,
} from '../../src/registration/cimd/address-policy.ts';
import { hostPolicy } from '../../src/registration/cimd/cimd-feature.ts';
import { cacheLifetimeSeconds, createMemoryDocumentCache } from '../../src/registration/cimd/document-cache.ts';
import { isJsonContentType } from '../../src/registration/cimd/guarded-fetch.ts';
import { normalizeHost } from '../../src/registration/cimd/host-names.ts';

describe('classifyAddress', () => {
  const cases: Array<[string, AddressClass]> = [
    ['8.8.8.8', 'public'],
    ['172.32.0.1', 'public'],
    ['100.128.0.1', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['192.168.1.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['100.64.0.1', 'shared'],
    ['169.254.169.254', 'cloud-metadata'],
    ['fd00:ec2::254', 'cloud-metadata'],
    ['100.100.100.200', 'cloud-metadata'],
    ['224.0.0.251', 'multicast'],
    ['ff02::1', 'multicast'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['2001:db8::1', 'documentation'],
    ['255.255.255.255', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['0.1.2.3', 'reserved'],
    ['2002:7f00:1::1', 'reserved'],
    ['2001::1', 'reserved'],
    ['4000::1', 'reserved'],
    ['not-an-ip', 'invalid'],
    ['', 'invalid'],
  ];
  it.each(cases)('classifies %s as %s', (address, kind) => {
    expect(classifyAddress(address)).toBe(kind);
  });

  it('judges IPv4-mapped and NAT64 IPv6 addresses as the IPv4 address they carry', () => {
    expect(classifyAddress('::ffff:127.0.0.1')).toBe('loopback');
    expect(classifyAddress('::ffff:7f00:1')).toBe('loopback');
    expect(classifyAddress('::ffff:a9fe:a9fe')).toBe('cloud-metadata');
    expect(classifyAddress('::FFFF:10.1.2.3')).toBe('private');
    expect(classifyAddress('::ffff:8.8.8.8')).toBe('public');
    expect(classifyAddress('64:ff9b::169.254.169.254')).toBe('cloud-metadata');
    expect(classifyAddress('64:ff9b::8.8.8.8')).toBe('public');
  });
});

describe('createAddressPolicy', () => {
  it('allows public addresses and refuses the others by default', () => {
    const policy = createAddressPolicy([]);
    expect(policy.allowAddress('example.com', '93.184.215.14')).toBe(true);
    for (const address of ['127.0.0.1', '::1', '10.0.0.1', '169.254.169.254', '100.64.1.1', '::ffff:192.168.0.1']) {
      expect(policy.allowAddress('example.com', address), address).toBe(false);
    }
    expect(policy.decide('docs.example', '10.0.0.1').reason).toBe('docs.example resolves to private address 10.0.0.1');
  });

  it('re-allows addresses, CIDR ranges and host names from privateNetworkAllowlist', () => {
    const policy = createAddressPolicy(['127.0.0.1', '10.20.0.0/16', 'fd00:1::/32', 'docs.internal', '*.corp.example']);
    expect(policy.allowAddress('any', '127.0.0.1')).toBe(true);
    expect(policy.allowAddress('any', '::ffff:127.0.0.1')).toBe(true);
    expect(policy.allowAddress('any', '127.0.0.2')).toBe(false);
    expect(policy.allowAddress('any', '10.20.3.4')).toBe(true);
    expect(policy.allowAddress('any', '10.21.3.4')).toBe(false);
    expect(policy.allowAddress('any', 'fd00:1::5')).toBe(true);
    expect(policy.allowAddress('docs.internal', '192.168.1.1')).toBe(true);
    expect(policy.allowAddress('DOCS.internal.', '192.168.1.1')).toBe(true);
    expect(policy.allowAddress('a.corp.example', '192.168.1.1')).toBe(true);
    expect(policy.allowAddress('corp.example', '192.168.1.1')).toBe(false);
    expect(policy.allowAddress('docs.internal.evil', '192.168.1.1')).toBe(false);
  });

  it('never allows cloud metadata, multicast or unspecified addresses, whatever the allowlist says', () => {
    const policy = createAddressPolicy(['169.254.0.0/16', '0.0.0.0/0', '::/0', 'metadata.internal']);
    expect(policy.allowAddress('x', '169.254.1.1')).toBe(true);
    expect(policy.allowAddress('x', '169.254.169.254')).toBe(false);
    expect(policy.allowAddress('metadata.internal', '169.254.169.254')).toBe(false);
    expect(policy.allowAddress('x', 'fd00:ec2::254')).toBe(false);
    expect(policy.allowAddress('x', '::ffff:169.254.169.254')).toBe(false);
    expect(policy.allowAddress('x', '224.0.0.1')).toBe(false);
    expect(policy.allowAddress('x', '0.0.0.0')).toBe(false);
    expect(policy.allowAddress('x', '::')).toBe(false);
  });

  it('refuses an allowlist entry that is no host, address or range', () => {
    for (const entry of ['10.0.0.0/33', '10.0.0.0/x', 'exa mple.com', 'http://x', '']) {
      expect(isValidNetworkAllowlistEntry(entry), entry).toBe(false);
      expect(() => createAddressPolicy([entry])).toThrow(TypeError);
    }
    for (const entry of ['10.0.0.0/8', '::1', '[::1]', 'fd00::/8', 'docs.internal', '*.corp.example', '127.0.0.1']) {
      expect(isValidNetworkAllowlistEntry(entry), entry).toBe(true);
    }
  });
});

describe('host policy', () => {
  it('any allows every host; allowlist only listed ones; denylist all but listed ones', () => {
    expect(hostPolicy({ mode: 'any', list: [] })('anything.example')).toBe(true);
    const allow = hostPolicy({ mode: 'allowlist', list: ['client.example', '*.apps.example'] });
    expect(allow('client.example')).toBe(true);
    expect(allow('CLIENT.example.')).toBe(true);
    expect(allow('x.apps.example')).toBe(true);
    expect(allow('x.y.apps.example')).toBe(true);
    expect(allow('apps.example')).toBe(false);
    expect(allow('evilclient.example')).toBe(false);
    expect(allow('client.example.evil')).toBe(false);
    const deny = hostPolicy({ mode: 'denylist', list: ['evil.example', '*.evil.example'] });
    expect(deny('good.example')).toBe(true);
    expect(deny('evil.example')).toBe(false);
    expect(deny('evil.example.')).toBe(false);
    expect(deny('EVIL.EXAMPLE')).toBe(false);
    expect(deny('a.evil.example')).toBe(false);
  });

  it('compares host names in one spelling', () => {
    expect(normalizeHost('Example.COM.')).toBe('example.com');
    expect(normalizeHost('bücher.example')).toBe('xn--bcher-kva.example');
    expect(normalizeHost('[0:0::1]')).toBe('::1');
  });
});

describe('document cache lifetime', () => {
  const bounds = { min: 60, max: 3600 };
  const now = Date.parse('2026-01-01T00:00:00Z');
  const lifetime = (headers: Record<string, string>, b = bounds) => cacheLifetimeSeconds(new Headers(headers), b, now);

  it('honours max-age, s-maxage and Expires within the bounds', () => {
    expect(lifetime({ 'cache-control': 'public, max-age=600' })).toBe(600);
    expect(lifetime({ 'cache-control': 'max-age=600, s-maxage=900' })).toBe(900);
    expect(lifetime({ 'cache-control': 'max-age=5' })).toBe(60);
    expect(lifetime({ 'cache-control': 'max-age=999999' })).toBe(3600);
    expect(lifetime({ expires: new Date(now + 1_200_000).toUTCString() })).toBe(1200);
    expect(lifetime({ expires: 'Thu, 01 Jan 2026 00:10:00 GMT', date: 'Thu, 01 Jan 2026 00:05:00 GMT' })).toBe(300);
    expect(lifetime({ expires: '0' })).toBe(60);
    expect(lifetime({})).toBe(60);
    expect(lifetime({ 'cache-control': 'no-store' })).toBe(60);
    expect(lifetime({ 'cache-control': 'no-store' }, { min: 0, max: 3600 })).toBe(0);
    expect(lifetime({ 'cache-control': 'max-age=600' }, { min: 0, max: 30 })).toBe(30);
  });

  it('memory cache serves an entry until it expires and stays bounded', async () => {
    let clock = now;
    const cache = createMemoryDocumentCache({ maxEntries: 2, now: () => clock });
    await cache.set('t1', 'https://a.example/c', { body: '{}', contentType: 'application/json', expiresAt: now + 1000 });
    expect(await cache.get('t1', 'https://a.example/c')).toMatchObject({ body: '{}' });
    expect(await cache.get('t2', 'https://a.example/c')).toBeUndefined();
    await cache.set('t1', 'https://b.example/c', { body: '{}', contentType: 'application/json', expiresAt: now + 5000 });
    await cache.set('t1', 'https://c.example/c', { body: '{}', contentType: 'application/json', expiresAt: now + 5000 });
    expect(await cache.get('t1', 'https://a.example/c')).toBeUndefined();
    clock += 5000;
    expect(await cache.get('t1', 'https://b.example/c')).toBeUndefined();
  });
});

it('accepts only JSON content types', () => {
  expect(isJsonContentType('application/json')).toBe(true);
  expect(isJsonContentType('Application/JSON; charset=utf-8')).toBe(true);
  expect(isJsonContentType('application/jwk-set+json')).toBe(true);
  expect(isJsonContentType('text/json')).toBe(false);
  expect(isJsonContentType('text/html')).toBe(false);
  expect(isJsonContentType('application/jsonp')).toBe(false);
  expect(isJsonContentType(undefined)).toBe(false);
  expect(isJsonContentType('')).toBe(false);
});
