import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSettings, SettingsError } from './settings.ts';

const KEK = randomBytes(32).toString('base64');
const dir = mkdtempSync(join(tmpdir(), 'castellan-settings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** Writes `content` to a fresh temp file and returns its path. */
function configFile(content: string): string {
  files += 1;
  const path = join(dir, `config-${files}.json`);
  writeFileSync(path, content);
  return path;
}

/** loadSettings must throw a SettingsError whose message names `variable`. */
function expectRefused(env: Record<string, string>, variable: string): SettingsError {
  let thrown: unknown;
  try {
    loadSettings(env);
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `${JSON.stringify(env)} should be refused`).toBeInstanceOf(SettingsError);
  const error = thrown as SettingsError;
  expect(error.code).toBe('INVALID_SETTINGS');
  expect(error.message).toContain(variable);
  expect(error.problems.some((problem) => problem.includes(variable))).toBe(true);
  return error;
}

describe('loadSettings defaults', () => {
  it('runs on port 4000, at http://localhost:4000, on the in-memory store, loopback only', () => {
    const settings = loadSettings({});
    expect(settings.port).toBe(4000);
    expect(settings.baseUrl).toBe('http://localhost:4000');
    expect(settings.storage).toBe('memory');
    expect(settings.host).toBe('127.0.0.1');
    expect(settings.logLevel).toBe('info');
    expect(settings.trustProxy).toBe(false);
    expect(settings.demo.enabled).toBe(true);
    expect(settings.tenants).toEqual({});
  });

  it('ignores empty environment variables', () => {
    const settings = loadSettings({ PORT: '', CASTELLAN_BASE_URL: '', MONGODB_URL: '' });
    expect(settings.port).toBe(4000);
    expect(settings.storage).toBe('memory');
  });
});

describe('loadSettings overrides', () => {
  it('takes PORT, and builds the default base URL on it', () => {
    const settings = loadSettings({ PORT: '8080' });
    expect(settings.port).toBe(8080);
    expect(settings.baseUrl).toBe('http://localhost:8080');
  });

  it('takes CASTELLAN_BASE_URL independently of PORT, normalised to its origin', () => {
    expect(loadSettings({ PORT: '8080', CASTELLAN_BASE_URL: 'https://auth.example.com' }).baseUrl).toBe('https://auth.example.com');
    expect(loadSettings({ CASTELLAN_BASE_URL: 'https://auth.example.com/' }).baseUrl).toBe('https://auth.example.com');
    expect(loadSettings({ CASTELLAN_BASE_URL: 'https://auth.example.com:8443' }).baseUrl).toBe('https://auth.example.com:8443');
  });

  it('chooses the storage from MONGODB_URL and REDIS_URL', () => {
    expect(loadSettings({ MONGODB_URL: 'mongodb://db.example:27017', CASTELLAN_KEY_ENCRYPTION_KEY: KEK }).storage).toBe('mongo');
    expect(loadSettings({
      MONGODB_URL: 'mongodb+srv://cluster.example/castellan',
      REDIS_URL: 'rediss://cache.example:6380',
      CASTELLAN_KEY_ENCRYPTION_KEY: KEK,
    }).storage).toBe('mongo+redis');
  });

  it('accepts the key-encryption key in base64 and base64url', () => {
    const key = randomBytes(32);
    for (const encoded of [key.toString('base64'), key.toString('base64url')]) {
      expect(loadSettings({ MONGODB_URL: 'mongodb://db', CASTELLAN_KEY_ENCRYPTION_KEY: encoded }).keyEncryptionKey).toBe(encoded);
    }
  });

  it('turns the demo off with CASTELLAN_DEMO=false and pins its secrets', () => {
    expect(loadSettings({ CASTELLAN_DEMO: 'false' }).demo.enabled).toBe(false);
    expect(loadSettings({ CASTELLAN_DEMO: 'off' }).demo.enabled).toBe(false);
    const demo = loadSettings({ CASTELLAN_DEMO_CLIENT_SECRET: 'a-client-secret-123', CASTELLAN_DEMO_USER_PASSWORD: 'a-password' }).demo;
    expect(demo).toEqual({ enabled: true, clientSecret: 'a-client-secret-123', userPassword: 'a-password' });
  });

  it('takes CASTELLAN_TRUST_PROXY=true', () => {
    expect(loadSettings({ CASTELLAN_TRUST_PROXY: 'true' }).trustProxy).toBe(true);
  });

  // z.coerce.boolean() would make the string "false" true: a security setting must not.
  it('keeps proxy trust off for CASTELLAN_TRUST_PROXY=false or 0', () => {
    expect(loadSettings({ CASTELLAN_TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(loadSettings({ CASTELLAN_TRUST_PROXY: '0' }).trustProxy).toBe(false);
  });
});

describe('loadSettings refuses bad values, naming the environment variable', () => {
  it.each(['abc', '-1', '65536', '80.5', '4000abc'])('refuses PORT=%s', (port) => {
    expectRefused({ PORT: port }, 'PORT');
  });

  // Number(' ') is 0: a blank PORT must not mean "any port".
  it('refuses a blank PORT', () => {
    expectRefused({ PORT: ' ' }, 'PORT');
  });

  it.each(['0x10', '1e3'])('refuses PORT=%s', (value) => {
    expectRefused({ PORT: value }, 'PORT');
  });

  it('refuses a key-encryption key with characters outside base64', () => {
    expectRefused({ CASTELLAN_KEY_ENCRYPTION_KEY: `!!!!${KEK}` }, 'CASTELLAN_KEY_ENCRYPTION_KEY');
  });

  it.each([
    'ftp://auth.example.com',
    'javascript:alert(1)',
    'https://auth.example.com/castellan',
    'https://auth.example.com/?tenant=x',
    'https://auth.example.com/#x',
    // RFC 8414 §2: issuers use https; plain http only on loopback (development).
    'http://auth.example.com',
    'http://10.0.0.5:4000',
  ])('refuses CASTELLAN_BASE_URL=%s (not an http(s) origin)', (url) => {
    expectRefused({ CASTELLAN_BASE_URL: url }, 'CASTELLAN_BASE_URL');
  });

  // Not a URL at all: a SettingsError naming the variable, not a TypeError.
  it('refuses a CASTELLAN_BASE_URL that is not a URL at all', () => {
    expectRefused({ CASTELLAN_BASE_URL: 'not a url' }, 'CASTELLAN_BASE_URL');
  });

  it('refuses a MONGODB_URL or REDIS_URL of another scheme', () => {
    expectRefused({ MONGODB_URL: 'http://db.example', CASTELLAN_KEY_ENCRYPTION_KEY: KEK }, 'MONGODB_URL');
    expectRefused({ MONGODB_URL: 'mongodb://db', REDIS_URL: 'http://cache', CASTELLAN_KEY_ENCRYPTION_KEY: KEK }, 'REDIS_URL');
  });

  it('refuses a key-encryption key that is not 32 bytes', () => {
    for (const key of [randomBytes(16).toString('base64'), randomBytes(31).toString('base64url'), randomBytes(33).toString('base64'), 'short']) {
      expectRefused({ MONGODB_URL: 'mongodb://db', CASTELLAN_KEY_ENCRYPTION_KEY: key }, 'CASTELLAN_KEY_ENCRYPTION_KEY');
    }
  });

  it('refuses MONGODB_URL without CASTELLAN_KEY_ENCRYPTION_KEY (keys would not survive a restart)', () => {
    expectRefused({ MONGODB_URL: 'mongodb://db' }, 'CASTELLAN_KEY_ENCRYPTION_KEY');
  });

  it('refuses REDIS_URL without MONGODB_URL (durable state lives in MongoDB)', () => {
    const error = expectRefused({ REDIS_URL: 'redis://cache' }, 'MONGODB_URL');
    expect(error.message).toContain('REDIS_URL');
  });

  it('refuses other bad values by their variable', () => {
    expectRefused({ LOG_LEVEL: 'loud' }, 'LOG_LEVEL');
    expectRefused({ HOST: 'example.com' }, 'HOST');
    expectRefused({ MONGODB_URL: 'mongodb://db', CASTELLAN_KEY_ENCRYPTION_KEY: KEK, MONGODB_DATABASE: 'a/b' }, 'MONGODB_DATABASE');
    expectRefused({ CASTELLAN_REDIS_PREFIX: 'has space' }, 'CASTELLAN_REDIS_PREFIX');
    expectRefused({ CASTELLAN_COOKIE_SECRET: 'too-short' }, 'CASTELLAN_COOKIE_SECRET');
    expectRefused({ CASTELLAN_DEMO_CLIENT_SECRET: 'short' }, 'CASTELLAN_DEMO_CLIENT_SECRET');
  });

  it('names every bad variable at once', () => {
    const error = expectRefused({ PORT: 'abc', CASTELLAN_BASE_URL: 'ftp://auth.example.com', LOG_LEVEL: 'loud' }, 'PORT');
    expect(error.message).toContain('CASTELLAN_BASE_URL');
    expect(error.message).toContain('LOG_LEVEL');
  });
});

describe('loadSettings with CASTELLAN_CONFIG_FILE', () => {
  it('merges the file under the environment (the environment wins, demo settings merge)', () => {
    const path = configFile(JSON.stringify({
      port: 5000,
      logLevel: 'debug',
      redisPrefix: 'from-file',
      demo: { clientSecret: 'file-client-secret-1', userPassword: 'file-password' },
    }));
    const settings = loadSettings({ CASTELLAN_CONFIG_FILE: path, PORT: '6000', CASTELLAN_DEMO_USER_PASSWORD: 'env-password' });
    expect(settings.port).toBe(6000);
    expect(settings.baseUrl).toBe('http://localhost:6000');
    expect(settings.logLevel).toBe('debug');
    expect(settings.redisPrefix).toBe('from-file');
    expect(settings.demo).toEqual({ enabled: true, clientSecret: 'file-client-secret-1', userPassword: 'env-password' });
  });

  it('takes tenants from the file and checks their ids and settings at load', () => {
    const tenants = { acme: { displayName: 'Acme', scopes: ['files:read'], resources: [{ uri: 'https://files.acme.example/mcp', scopes: ['files:read'] }] } };
    expect(Object.keys(loadSettings({ CASTELLAN_CONFIG_FILE: configFile(JSON.stringify({ tenants })) }).tenants)).toEqual(['acme']);
    for (const bad of [{ ACME: {} }, { acme: { resources: [{ uri: 'not a url' }] } }]) {
      expect(() => loadSettings({ CASTELLAN_CONFIG_FILE: configFile(JSON.stringify({ tenants: bad })) })).toThrow(SettingsError);
    }
  });

  it('names the setting when a file value is bad', () => {
    expectRefused({ CASTELLAN_CONFIG_FILE: configFile(JSON.stringify({ port: 'abc' })) }, 'PORT');
    expectRefused({ CASTELLAN_CONFIG_FILE: configFile(JSON.stringify({ baseUrl: 'https://x.example/path' })) }, 'CASTELLAN_BASE_URL');
  });

  it('refuses a file that cannot be read', () => {
    expectRefused({ CASTELLAN_CONFIG_FILE: join(dir, 'missing.json') }, 'CASTELLAN_CONFIG_FILE');
    expectRefused({ CASTELLAN_CONFIG_FILE: dir }, 'CASTELLAN_CONFIG_FILE');
  });

  it.each(['{ port: 5000 }', '', 'null', '[1, 2]', '"text"', '{"port": 5000'])('refuses a file that is not a JSON object: %j', (content) => {
    expectRefused({ CASTELLAN_CONFIG_FILE: configFile(content) }, 'CASTELLAN_CONFIG_FILE');
  });
});
