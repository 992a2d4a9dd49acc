import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { loadSettings } from '../../src/config/settings.ts';
import { createMemoryAuditSink, type AuditEvent } from '../../src/observability/audit.ts';
import { startCastellan, type RunningCastellan } from '../../src/server.ts';
import { freePort } from './running-server.ts';
import { testServers, uniqueDbName, uniqueRedisPrefix } from './servers.ts';

export type StorageKind = 'memory' | 'mongo' | 'mongo+redis';
export const STORAGE_KINDS: readonly StorageKind[] = ['memory', 'mongo', 'mongo+redis'];

export interface TestCastellan {
  baseUrl: string;
  issuer: string;
  running: RunningCastellan;
  clientSecret: string;
  userPassword: string;
  /** The environment that started it, to start another process on the same stores. */
  env: Record<string, string>;
  /** Every audit event this server recorded. */
  audit: AuditEvent[];
  stop(): Promise<void>;
}

/** Environment for a Castellan on fresh stores of the given kind (FerretDB/Redis from the global setup). */
export async function testEnvironment(kind: StorageKind, name: string): Promise<Record<string, string>> {
  const port = await freePort();
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: '127.0.0.1',
    CASTELLAN_BASE_URL: `http://localhost:${port}`,
    CASTELLAN_DEMO_CLIENT_SECRET: randomBytes(18).toString('base64url'),
    CASTELLAN_DEMO_USER_PASSWORD: randomBytes(12).toString('base64url'),
    LOG_LEVEL: 'silent',
  };
  if (kind !== 'memory') {
    const servers = testServers();
    env.MONGODB_URL = servers.mongoUrl;
    env.MONGODB_DATABASE = uniqueDbName(name);
    env.CASTELLAN_KEY_ENCRYPTION_KEY = randomBytes(32).toString('base64url');
    if (kind === 'mongo+redis') {
      env.REDIS_URL = servers.redisUrl;
      env.CASTELLAN_REDIS_PREFIX = uniqueRedisPrefix(name);
    }
  }
  return env;
}

/** Starts Castellan in this process on the given stores, with the demo tenant seeded. */
export async function startTestCastellan(kind: StorageKind, name: string, env?: Record<string, string>): Promise<TestCastellan> {
  const environment = env ?? (await testEnvironment(kind, name));
  const settings = loadSettings(environment);
  const audit = createMemoryAuditSink();
  const running = await startCastellan(settings, pino({ level: 'silent' }), { audit });
  return {
    baseUrl: settings.baseUrl,
    issuer: `${settings.baseUrl}/t/demo`,
    running,
    clientSecret: environment.CASTELLAN_DEMO_CLIENT_SECRET ?? '',
    userPassword: environment.CASTELLAN_DEMO_USER_PASSWORD ?? '',
    env: environment,
    audit: audit.events,
    stop: () => running.close(),
  };
}
