import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { tenantSettingsSchema } from '../tenants/tenant-settings.ts';
import { tenantIdSchema } from '../tenants/tenant-store.ts';

/**
 * Castellan's one configuration object. Sources, later wins: defaults, the JSON file named
 * by CASTELLAN_CONFIG_FILE, environment variables. This schema is the documentation of
 * every setting (README "Configuration" mirrors it).
 */
const base64Key32 = z
  .string()
  .regex(/^[A-Za-z0-9+/_-]+={0,2}$/, 'must be base64url or base64 text')
  .refine((v) => Buffer.from(v, 'base64url').length === 32, {
    message: 'must be 32 bytes, base64url or base64 encoded (generate one: openssl rand -base64 32)',
  });

/** A boolean from the environment: only the usual spellings, so "false" is never true. */
const flag = z.union([
  z.boolean(),
  z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off']))
    .transform((v) => ['true', '1', 'yes', 'on'].includes(v)),
]);

/** localhost, 127.0.0.0/8 or [::1]: the hosts a development base URL may name over plain http. */
function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** A TCP port: decimal digits only from the environment (no blanks, hex or exponents). */
const port = z
  .union([z.number(), z.string().regex(/^\d{1,5}$/, 'must be a port number (0-65535)').transform(Number)])
  .pipe(z.number().int().min(0).max(65535));

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export const settingsSchema = z
  .object({
    port: port.default(4000),
    /** Interface to listen on; loopback by default, 0.0.0.0 in containers. */
    host: z.union([z.ipv4(), z.ipv6(), z.literal('localhost')]).default('127.0.0.1'),
    /** The public origin (and optional path) issuers are built on: `<baseUrl>/t/<tenant>`. */
    baseUrl: z
      .url({ protocol: /^https?$/ })
      .refine((v) => {
        const u = URL.parse(v);
        return u !== null && (u.pathname === '/' || u.pathname === '') && !u.search && !u.hash;
      }, 'must be an origin such as https://auth.example.com (no path, query or fragment)')
      // RFC 8414 §2 / OIDC Discovery §3: an issuer MUST use https; plain http is for local development.
      .refine((v) => {
        const u = URL.parse(v);
        return u === null || u.protocol === 'https:' || isLoopbackHost(u.hostname);
      }, 'must be https (plain http only on localhost, 127.0.0.0/8 or [::1], for development): issuers must use https')
      .transform((v) => new URL(v).origin)
      .optional(),
    mongodbUrl: z.string().regex(/^mongodb(\+srv)?:\/\//, 'must be a mongodb:// or mongodb+srv:// URL').optional(),
    /** Database name; defaults to the URL's path or "castellan". */
    mongodbDatabase: z.string().regex(/^[A-Za-z0-9_-]{1,63}$/).optional(),
    redisUrl: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
    /** Redis key prefix, so several deployments can share one Redis. */
    redisPrefix: z.string().regex(/^[A-Za-z0-9:_-]{1,40}$/).default('castellan'),
    /**
     * How long one MongoDB or Redis call may take (connect, server selection, reply) before
     * the request gets 503 temporarily_unavailable: a hung store must not hang requests.
     */
    storeTimeoutMs: z
      .union([z.number(), z.string().regex(/^\d{1,6}$/, 'must be a whole number of milliseconds').transform(Number)])
      .pipe(z.number().int().min(100).max(600_000))
      .default(10_000),
    /** AES-256 key-encryption key wrapping every signing key's data key (envelope encryption). */
    keyEncryptionKey: base64Key32.optional(),
    /** Secret from which cookie signing keys are derived; defaults to one derived from the KEK. */
    cookieSecret: z.string().min(32).optional(),
    logLevel: logLevel.default('info'),
    /** PEM file of extra CA certificates trusted for outbound fetches (CIMD, jwks_uri). */
    fetchCaFile: z.string().min(1).optional(),
    /** A module whose default export overrides policy hooks (src/policy/hooks.ts). */
    policyModule: z.string().min(1).optional(),
    /** Trust X-Forwarded-* from a TLS-terminating proxy in front of Castellan. */
    trustProxy: flag.default(false),
    /** Bearer token that GET /metrics requires; /metrics is off (404) without one. */
    metricsToken: z.string().min(32, 'must be at least 32 characters (generate one: openssl rand -base64 32)').optional(),
    /** On SIGTERM/SIGINT, how long in-flight requests may take to finish before connections are cut. */
    /** Endpoint rate limits (each tenant's `rateLimits`); off only for benchmarks and load tests. */
    rateLimits: flag.default(true),
    /**
     * With Redis and MongoDB, the token endpoints' audit events go through the Redis journal
     * (src/observability/audit-journal.ts); off: straight into the chain, as durable as MongoDB
     * (a Redis crash then loses none), at the price of a MongoDB insert on every token answer.
     */
    auditJournal: flag.default(true),
    shutdownDrainSeconds: z
      .union([z.number(), z.string().regex(/^\d{1,3}$/, 'must be a whole number of seconds').transform(Number)])
      .pipe(z.number().int().min(0).max(600))
      .default(10),
    /** The admin API at /admin/v1, protected by access tokens of the system tenant (README "Admin API"). */
    adminApi: flag.default(true),
    /** The tenant whose clients administer Castellan; created at start-up while the admin API is on. */
    systemTenant: tenantIdSchema.default('system'),
    demo: z
      .object({
        enabled: flag.default(true),
        clientSecret: z.string().min(16).optional(),
        userPassword: z.string().min(8).optional(),
      })
      .prefault({}),
    /** Tenants to create at start-up when missing, by id, with their tenant settings. */
    tenants: z
      .record(
        tenantIdSchema,
        z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
          // Checked here so a bad tenant stops start-up instead of failing its first request.
          const result = tenantSettingsSchema.safeParse(value);
          if (!result.success) {
            for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
          }
        }),
      )
      .default({}),
  })
  .superRefine((s, ctx) => {
    if (s.redisUrl && !s.mongodbUrl) {
      ctx.addIssue({
        code: 'custom',
        path: ['mongodbUrl'],
        message: 'MONGODB_URL is required when REDIS_URL is set: clients, grants and keys are durable state and live in MongoDB',
      });
    }
    if (s.mongodbUrl && !s.keyEncryptionKey) {
      ctx.addIssue({
        code: 'custom',
        path: ['keyEncryptionKey'],
        message: 'CASTELLAN_KEY_ENCRYPTION_KEY is required when MONGODB_URL is set: stored signing keys must stay decryptable across restarts',
      });
    }
  });

export type SettingsInput = z.input<typeof settingsSchema>;
export type ParsedSettings = z.output<typeof settingsSchema>;
export interface Settings extends ParsedSettings {
  baseUrl: string;
  storage: 'memory' | 'mongo+redis' | 'mongo';
}

/** Which environment variable feeds which setting (so errors can name the variable). */
const ENV_NAMES = {
  port: 'PORT',
  host: 'HOST',
  baseUrl: 'CASTELLAN_BASE_URL',
  mongodbUrl: 'MONGODB_URL',
  mongodbDatabase: 'MONGODB_DATABASE',
  redisUrl: 'REDIS_URL',
  redisPrefix: 'CASTELLAN_REDIS_PREFIX',
  storeTimeoutMs: 'CASTELLAN_STORE_TIMEOUT_MS',
  keyEncryptionKey: 'CASTELLAN_KEY_ENCRYPTION_KEY',
  cookieSecret: 'CASTELLAN_COOKIE_SECRET',
  logLevel: 'LOG_LEVEL',
  policyModule: 'CASTELLAN_POLICY_MODULE',
  fetchCaFile: 'CASTELLAN_FETCH_CA_FILE',
  trustProxy: 'CASTELLAN_TRUST_PROXY',
  metricsToken: 'CASTELLAN_METRICS_TOKEN',
  adminApi: 'CASTELLAN_ADMIN_API',
  systemTenant: 'CASTELLAN_SYSTEM_TENANT',
  shutdownDrainSeconds: 'CASTELLAN_SHUTDOWN_DRAIN_SECONDS',
  rateLimits: 'CASTELLAN_RATE_LIMITS',
  auditJournal: 'CASTELLAN_AUDIT_JOURNAL',
} as const satisfies Partial<Record<keyof ParsedSettings, string>>;

const DEMO_ENV_NAMES = {
  clientSecret: 'CASTELLAN_DEMO_CLIENT_SECRET',
  userPassword: 'CASTELLAN_DEMO_USER_PASSWORD',
  enabled: 'CASTELLAN_DEMO',
} as const;

export class SettingsError extends Error {
  readonly code = 'INVALID_SETTINGS';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid settings:\n  - ${problems.join('\n  - ')}`);
    this.name = 'SettingsError';
    this.problems = problems;
  }
}

type Env = Record<string, string | undefined>;

function fromEnvironment(env: Env): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, name] of Object.entries(ENV_NAMES)) {
    const value = env[name];
    if (value !== undefined && value !== '') out[key] = value;
  }
  const demo: Record<string, unknown> = {};
  if (env[DEMO_ENV_NAMES.clientSecret]) demo.clientSecret = env[DEMO_ENV_NAMES.clientSecret];
  if (env[DEMO_ENV_NAMES.userPassword]) demo.userPassword = env[DEMO_ENV_NAMES.userPassword];
  const enabled = env[DEMO_ENV_NAMES.enabled];
  if (enabled !== undefined && enabled !== '') demo.enabled = enabled;
  if (Object.keys(demo).length) out.demo = demo;
  return out;
}

function fromFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SettingsError([`CASTELLAN_CONFIG_FILE: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as Record<string, unknown>;
  } catch {
    throw new SettingsError([`CASTELLAN_CONFIG_FILE: ${path} is not a JSON object`]);
  }
}

function settingName(path: PropertyKey[]): string {
  const [first, second] = path;
  if (first === 'demo' && typeof second === 'string' && second in DEMO_ENV_NAMES) {
    return `${DEMO_ENV_NAMES[second as keyof typeof DEMO_ENV_NAMES]} (demo.${second})`;
  }
  if (typeof first === 'string' && first in ENV_NAMES) {
    return `${ENV_NAMES[first as keyof typeof ENV_NAMES]} (${path.join('.')})`;
  }
  return path.join('.') || '(settings)';
}

/** Reads, merges and validates settings; throws SettingsError naming each bad setting. */
export function loadSettings(env: Env = process.env): Settings {
  const file = env.CASTELLAN_CONFIG_FILE ? fromFile(env.CASTELLAN_CONFIG_FILE) : {};
  const fromEnv = fromEnvironment(env);
  const merged = {
    ...file,
    ...fromEnv,
    demo: { ...(file.demo as object | undefined), ...(fromEnv.demo as object | undefined) },
  };
  const result = settingsSchema.safeParse(merged);
  if (!result.success) {
    throw new SettingsError(result.error.issues.map((i) => `${settingName(i.path)}: ${i.message}`));
  }
  const parsed = result.data;
  const storage = parsed.mongodbUrl ? (parsed.redisUrl ? 'mongo+redis' : 'mongo') : 'memory';
  return {
    ...parsed,
    baseUrl: parsed.baseUrl ?? `http://localhost:${parsed.port}`,
    storage,
  };
}
