import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { spawnManaged, waitUntilReady, type ManagedProcess } from '../../test/support/child-processes.ts';
import { startFerretDb } from '../../test/support/ferretdb.ts';
import { startRedis } from '../../test/support/redis.ts';
import { freePort, type RunningServer } from '../../test/support/running-server.ts';

/*
 * Everything the bench starts, as child processes on loopback, registered in one place so
 * that stopAll() (called from finally and from signal handlers) ends every one of them.
 * Stores come from the test support (FerretDB built from tools/ferretdb, Debian's
 * redis-server), started the way the test suite starts them.
 */

const REPO = join(import.meta.dirname, '..', '..');
const stoppers = new Set<() => Promise<void>>();

export function registerStop(stop: () => Promise<void>): () => Promise<void> {
  const once = async () => {
    stoppers.delete(once);
    await stop();
  };
  stoppers.add(once);
  return once;
}

export async function stopAll(): Promise<void> {
  // Servers first, stores last: a Castellan shutting down may still write.
  const list = [...stoppers].reverse();
  for (const stop of list) await stop().catch(() => {});
}

/** Server URL → pid of its single process, for CPU time per request (cluster servers are left out). */
const cpuPids = new Map<string, number>();

/** The pid whose CPU time a load measurement against this origin reads, if any. */
export function serverPidOf(origin: string): number | undefined {
  return cpuPids.get(origin);
}

export interface Stores {
  mongoUrl: string;
  redisUrl: string;
}

export async function startStores(log: (line: string) => void): Promise<Stores> {
  const [ferret, redis] = await Promise.allSettled([startFerretDb({ log }), startRedis({ log })]);
  const started = [ferret, redis].flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  for (const server of started) registerStop(() => server.stop());
  if (ferret.status !== 'fulfilled' || redis.status !== 'fulfilled') {
    throw new Error(`stores failed to start: ${[ferret, redis].flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : [])).join('; ')}`);
  }
  return { mongoUrl: (ferret.value as RunningServer).url, redisUrl: (redis.value as RunningServer).url };
}

export interface BenchServer {
  name: string;
  /** http://127.0.0.1:PORT */
  url: string;
  /** The bench control endpoint (seeding, RSS), where the server has one. */
  controlUrl: string | undefined;
  process: ManagedProcess;
  stop(): Promise<void>;
}

interface SpawnInput {
  name: string;
  script: string;
  env: Record<string, string>;
  probePath: string;
  control?: boolean;
  nodeArgs?: readonly string[];
  port?: number;
  /** Checkout the script is run from (default: this one). */
  root?: string;
}

async function spawnServer(input: SpawnInput): Promise<BenchServer> {
  const port = input.port ?? (await freePort());
  const controlPort = input.control ? await freePort() : undefined;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    ...input.env,
    PORT: String(port),
    ...(controlPort !== undefined ? { BENCH_CONTROL_PORT: String(controlPort) } : {}),
  };
  const child = spawnManaged(process.execPath, [...(input.nodeArgs ?? []), join(input.root ?? REPO, input.script)], { env });
  const url = `http://127.0.0.1:${port}`;
  const stop = registerStop(async () => {
    cpuPids.delete(url);
    await child.stop(5_000);
  });
  // A node:cluster primary does none of the work: its workers' CPU time is not in its /proc stat.
  if (child.pid !== undefined && input.env.BENCH_WORKERS === undefined) cpuPids.set(url, child.pid);
  try {
    await waitUntilReady(input.name, async () => {
      const response = await fetch(`${url}${input.probePath}`);
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`${input.probePath} answered ${response.status}`);
    }, child, 60_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    name: input.name,
    url,
    controlUrl: controlPort !== undefined ? `http://127.0.0.1:${controlPort}` : undefined,
    process: child,
    stop,
  };
}

export type CastellanStorage = 'memory' | 'production';

export interface CastellanServer extends BenchServer {
  issuer: string;
  clientSecret: string;
  userPassword: string;
  env: Record<string, string>;
}

export interface CastellanOptions {
  name: string;
  storage: CastellanStorage;
  stores?: Stores | undefined;
  workers?: number;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeArgs?: readonly string[];
  /** More environment (CASTELLAN_CONFIG_FILE). */
  extraEnv?: Record<string, string>;
  /** Another checkout of Castellan to run instead of this one (`--compare`). */
  root?: string;
}

function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 24);
}

/** Castellan (bench/servers/castellan.ts: startCastellan like `npm start`) with the demo tenant. */
export async function startCastellanServer(options: CastellanOptions): Promise<CastellanServer> {
  const port = await freePort();
  const clientSecret = randomBytes(18).toString('base64url');
  const userPassword = randomBytes(12).toString('base64url');
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    CASTELLAN_BASE_URL: `http://localhost:${port}`,
    CASTELLAN_DEMO_CLIENT_SECRET: clientSecret,
    CASTELLAN_DEMO_USER_PASSWORD: userPassword,
    LOG_LEVEL: 'silent',
    NODE_ENV: 'production',
    // The load comes from one address: endpoint rate limits would measure 429s (README "Rate limits").
    CASTELLAN_RATE_LIMITS: 'off',
    ...options.extraEnv,
  };
  if (options.storage === 'production') {
    if (!options.stores) throw new Error('production storage needs the stores');
    const unique = `${slug(options.name)}_${randomBytes(4).toString('hex')}`;
    env.MONGODB_URL = options.stores.mongoUrl;
    env.MONGODB_DATABASE = `bench_${unique}`;
    env.REDIS_URL = options.stores.redisUrl;
    env.CASTELLAN_REDIS_PREFIX = `bench-${unique}`;
    env.CASTELLAN_KEY_ENCRYPTION_KEY = randomBytes(32).toString('base64url');
  }
  if (options.workers !== undefined) env.BENCH_WORKERS = String(options.workers);
  const server = await spawnServer({
    name: options.name,
    script: 'bench/servers/castellan.ts',
    env,
    probePath: '/healthz',
    control: options.workers === undefined,
    nodeArgs: ['--expose-gc', ...(options.nodeArgs ?? [])],
    port,
    ...(options.root !== undefined ? { root: options.root } : {}),
  });
  return { ...server, issuer: `${server.url}/t/demo`, clientSecret, userPassword, env: { ...env, PORT: String(port) } };
}

export const BASELINE_SECRET = 'bench-secret-bench-secret-bench-secret';

/** Bare oidc-provider; `mount: 'koa'` serves it from inside an outer Koa app (bare-oidc.ts). */
export function startBareOidc(nodeArgs: readonly string[] = [], mount?: 'koa'): Promise<BenchServer> {
  return spawnServer({
    name: mount ? 'bare oidc-provider inside Koa' : 'bare oidc-provider',
    script: 'bench/servers/bare-oidc.ts',
    env: { BENCH_CLIENT_SECRET: BASELINE_SECRET, NODE_ENV: 'production', ...(mount ? { BENCH_MOUNT: mount } : {}) },
    probePath: '/.well-known/openid-configuration',
    control: true,
    nodeArgs,
  });
}

export function startOauth2Server(): Promise<BenchServer> {
  return spawnServer({
    name: '@node-oauth/oauth2-server',
    script: 'bench/servers/oauth2-server.ts',
    env: { BENCH_CLIENT_SECRET: BASELINE_SECRET, NODE_ENV: 'production' },
    probePath: '/',
  });
}

export function startBareKoa(): Promise<BenchServer> {
  return spawnServer({ name: 'bare Koa', script: 'bench/servers/bare-koa.ts', env: { NODE_ENV: 'production' }, probePath: '/' });
}

/** An example MCP server of mcp-examples/, pointed at a Castellan, answering for its demo resource. */
export function startMcpExample(kind: 'notes' | 'reports', castellan: CastellanServer): Promise<BenchServer> {
  const issuer = `${castellan.env.CASTELLAN_BASE_URL}/t/demo`;
  const env: Record<string, string> = kind === 'notes'
    ? { CASTELLAN_ISSUER: issuer, NOTES_RESOURCE: 'http://localhost:3001/mcp', HOST: '127.0.0.1' }
    : {
      CASTELLAN_ISSUER: issuer,
      REPORTS_RESOURCE: 'http://localhost:3002/api',
      HOST: '127.0.0.1',
      INTROSPECTION_CLIENT_SECRET: castellan.clientSecret,
      INTROSPECTION_CACHE_SECONDS: '0',
    };
  return spawnServer({
    name: `${kind} MCP server → ${castellan.name}`,
    script: `mcp-examples/${kind}-server/main.ts`,
    env: { ...env, NODE_ENV: 'production' },
    probePath: kind === 'notes' ? '/.well-known/oauth-protected-resource/mcp' : '/.well-known/oauth-protected-resource/api',
  });
}
