import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Settings } from './config/settings.ts';
import { seedDemoTenant, type DemoCredentials } from './demo/demo-tenant.ts';
import { createLoginThrottle, throttledPasswordCheck } from './accounts/login-throttle.ts';
import { createTotpService, type TotpService } from './accounts/totp-service.ts';
import { createApp } from './http/app.ts';
import { createEndpointRateLimits } from './http/rate-limit.ts';
import { createKeyring, type Keyring } from './keys/keyring.ts';
import { createLocalKeyWrapper, generateKeyEncryptionKey } from './keys/kms.ts';
import type { AuditSink } from './observability/audit.ts';
import { createAuditTrail } from './observability/audit-trail.ts';
import { within } from './shared/within.ts';
import type { AuditEventStore } from './observability/audit-events.mongo.ts';
import { createMetrics, type CastellanMetrics } from './observability/metrics.ts';
import type { PolicyHooks } from './policy/hooks.ts';
import { loadPolicyHooks } from './policy/load-policy.ts';
import { openStorage, type Storage } from './storage/open-storage.ts';
import { deriveCookieKeys } from './tenants/cookie-keys.ts';
import { TenantRegistry } from './tenants/tenant-registry.ts';
import { startUnusedClientSweeper } from './registration/abuse/unused-clients.ts';
import { startRotationSchedule } from './keys/rotation-schedule.ts';
import { newTenantSchema } from './tenants/tenant-store.ts';
import { createAdminApi } from './admin/api/admin-router.ts';
import { createAdminClient, ensureSystemTenant } from './admin/services/system-tenant.ts';

export interface RunningCastellan {
  url: string;
  server: Server;
  storage: Storage;
  tenants: TenantRegistry;
  keyring: Keyring;
  demo: DemoCredentials | undefined;
  /**
   * On the in-memory store only: an admin client of the system tenant made at start-up (the
   * CLI cannot reach this process's memory, so `castellan init` cannot make one).
   */
  adminClient: { clientId: string; clientSecret: string } | undefined;
  metrics: CastellanMetrics;
  /** Moves what this node can from the audit journal into the chain (CastellanCore.flushAudit). */
  flushAudit(): Promise<void>;
  /**
   * Stops the server. /readyz answers 503 at once and the listener stops accepting; with
   * `drainMs`, requests in flight may finish within that bound before connections are cut;
   * then the stores close.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

/** How long /readyz waits for MongoDB and Redis to answer a ping. */
const READY_TIMEOUT_MS = 2_000;

async function readCaFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new Error(`CASTELLAN_FETCH_CA_FILE: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Creates the tenants named in settings that do not exist yet (existing ones are left alone). */
async function createConfiguredTenants(settings: Settings, storage: Storage, log: Logger): Promise<void> {
  for (const [id, tenantSettings] of Object.entries(settings.tenants)) {
    const input = newTenantSchema.parse({ id, displayName: String(tenantSettings.displayName ?? id), settings: tenantSettings });
    if (await storage.tenants.create(input)) log.info({ tenant: id }, 'tenant created from settings');
  }
}

export interface StartOptions {
  /**
   * Where audit events go besides the MongoDB audit chain (which records them whenever
   * MongoDB is configured); by default one structured log line each.
   */
  audit?: AuditSink;
  /** Metrics registry of this server; a new one by default. */
  metrics?: CastellanMetrics;
}

/** Storage, keys, policy and tenants, without HTTP: what the server and the CLI share. */
export interface CastellanCore {
  storage: Storage;
  keyring: Keyring;
  tenants: TenantRegistry;
  policy: PolicyHooks;
  /** TOTP second factors; secrets sealed under the KEK. */
  totp: TotpService;
  audit: AuditSink;
  /** The tenants' hash-chained audit events (MongoDB only), for `audit verify`. */
  auditEvents: AuditEventStore | undefined;
  /** Moves what this node can from the audit journal into the chain and waits for the appends in flight. */
  flushAudit(): Promise<void>;
  close(): Promise<void>;
}

export async function openCore(settings: Settings, log: Logger, options: StartOptions = {}): Promise<CastellanCore> {
  let kek = settings.keyEncryptionKey;
  if (!kek) {
    // Only reachable on the in-memory store (settings refuse MongoDB without a KEK).
    kek = generateKeyEncryptionKey();
    log.warn('no CASTELLAN_KEY_ENCRYPTION_KEY configured: generated a throw-away one for this in-memory run');
  }
  const policy = await loadPolicyHooks(settings.policyModule);
  const opened = await openStorage(settings, log);
  const trail = createAuditTrail({
    events: opened.auditEvents,
    journal: settings.auditJournal ? opened.auditJournal : undefined,
    other: options.audit,
    storeTimeoutMs: settings.storeTimeoutMs,
    metrics: options.metrics,
    log,
  });
  const audit = trail.sink;
  // Every model store operation timed (castellan_store_operation_duration_seconds).
  const backends = opened.kind === 'memory' ? { durable: 'memory', ephemeral: 'memory' } : { durable: 'mongodb', ephemeral: opened.kind === 'mongo+redis' ? 'redis' : 'mongodb' };
  const { metrics } = options;
  const instrumented: Storage = metrics ? { ...opened, modelStores: (tenant) => metrics.instrumentModelStores(opened.modelStores(tenant), backends) } : opened;
  // Closing the storage drains the audit appends in flight first.
  const storage: Storage = { ...instrumented, close: async () => { await trail.close(); await instrumented.close(); } };
  try {
    const keyring = createKeyring({ store: storage.signingKeys, wrapper: createLocalKeyWrapper(kek) });
    const cookieSecret = settings.cookieSecret ?? kek;
    const tenants = new TenantRegistry({
      baseUrl: settings.baseUrl,
      tenants: storage.tenants,
      keys: keyring,
      modelStores: (tenant) => storage.modelStores(tenant),
      accounts: (tenant) => async (sub) => {
        const user = await storage.users.findById(tenant, sub);
        return user ? { ...user.claims, sub: user.id } : undefined;
      },
      policy,
      cookieKeys: (tenant) => deriveCookieKeys(cookieSecret, tenant),
      registrationAbuse: storage.registrationAbuse,
      documentCache: storage.documentCache,
      retryCache: storage.retryCache,
      audit,
      fetchCa: settings.fetchCaFile ? await readCaFile(settings.fetchCaFile) : undefined,
      log,
    });
    const totp = createTotpService({
      accounts: storage.users, wrapper: createLocalKeyWrapper(kek), stepMarks: storage.oneTimeMarks.shortLived, recoveryMarks: storage.oneTimeMarks.lasting,
    });
    return { storage, keyring, tenants, policy, totp, audit, auditEvents: opened.auditEvents, flushAudit: () => trail.flush(), close: () => storage.close() };
  } catch (err) {
    await storage.close();
    throw err;
  }
}

/** Wires settings, storage, keys, tenants and HTTP together and listens. */
export async function startCastellan(settings: Settings, log: Logger, options: StartOptions = {}): Promise<RunningCastellan> {
  const metrics = options.metrics ?? createMetrics();
  const core = await openCore(settings, log, { ...options, metrics });
  const { storage, keyring, tenants, policy, totp, audit } = core;
  let draining = false;
  try {
    await createConfiguredTenants(settings, storage, log);
    // The admin API's tokens come from the system tenant (README "Admin API").
    const admin = settings.adminApi ? createAdminApi({ baseUrl: settings.baseUrl, systemTenant: settings.systemTenant, core, log, metrics }) : undefined;
    if (admin && (await ensureSystemTenant(core, { tenantId: settings.systemTenant, baseUrl: settings.baseUrl }, { via: 'schedule', subject: 'start-up' }))) {
      // In memory the CLI cannot reach this process: an admin client is made below instead.
      if (settings.storage !== 'memory') log.info({ tenant: settings.systemTenant }, 'system tenant created for the admin API; create an admin client with `castellan init`');
    }
    let adminClient: RunningCastellan['adminClient'];
    if (admin && settings.storage === 'memory') {
      const made = await createAdminClient(core, { tenantId: settings.systemTenant }, { via: 'schedule', subject: 'start-up' });
      if (made.clientSecret) adminClient = { clientId: made.client.client_id, clientSecret: made.clientSecret };
    }
    const demo = settings.demo.enabled
      ? await seedDemoTenant(
        {
          createTenant: (input) => storage.tenants.create(input),
          clients: storage.modelStores('demo').durable,
          findUser: (login) => storage.users.findByLogin('demo', login),
          createUser: (input) => storage.users.create({ tenant: 'demo', ...input }),
        },
        { clientSecret: settings.demo.clientSecret, userPassword: settings.demo.userPassword },
      )
      : undefined;

    // Build the known tenants' providers now: keys are elected at start-up, not on the first
    // request, and a broken tenant shows in the log at once.
    for (const tenant of [...Object.keys(settings.tenants), ...(demo ? [demo.tenant] : [])]) {
      await tenants.get(tenant).catch((err: unknown) => log.error({ err, tenant }, 'tenant failed to load'));
    }

    const loginThrottle = createLoginThrottle(storage.loginLimiters);
    const app = createApp({
      baseUrl: settings.baseUrl,
      trustProxy: settings.trustProxy,
      tenants,
      // One throttle for passwords and codes; the count clears when the whole sign-in succeeds.
      checkLogin: throttledPasswordCheck(loginThrottle, (tenant, login, password) => storage.users.verifyPassword(tenant, login, password)),
      accounts: storage.users,
      mfa: { totp, throttle: loginThrottle },
      upstreamLinks: storage.upstreamLinks,
      policy,
      registrationAbuse: storage.registrationAbuse,
      modelStores: (tenant) => storage.modelStores(tenant),
      deviceLimits: storage.deviceLimits,
      retryCache: storage.retryCache,
      audit,
      log,
      ready: async () => !draining && (await within(storage.ping(), READY_TIMEOUT_MS, false)),
      metrics,
      metricsToken: settings.metricsToken,
      admin,
      rateLimits: createEndpointRateLimits({ counters: storage.endpointLimits, enabled: settings.rateLimits, log }),
    });
    const sweeper = startUnusedClientSweeper({
      abuse: storage.registrationAbuse,
      modelStores: (tenant) => storage.modelStores(tenant),
      unusedClientDays: async (tenant) => (await tenants.get(tenant).catch(() => undefined))?.settings.registration.limits.unusedClientDays,
      onError: (err) => log.warn({ err }, 'sweep of unused self-registered clients failed'),
    });
    const server = app.listen(settings.port, settings.host);
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    // Scheduled key rotation (tenant settings `keys`); safe with any number of nodes.
    const keyRotation = startRotationSchedule({ keyring, listTenants: () => storage.tenants.list(), tenants, audit, log });
    return {
      url: `http://localhost:${port}`,
      server,
      storage,
      tenants,
      keyring,
      demo,
      adminClient,
      metrics,
      flushAudit: core.flushAudit,
      async close({ drainMs = 0 } = {}) {
        draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        if (drainMs > 0) {
          // Idle keep-alive connections go now and as requests finish; busy ones get the bound.
          const idle = setInterval(() => server.closeIdleConnections(), 100);
          const drained = await within(closed.then(() => true), drainMs, false);
          clearInterval(idle);
          if (!drained) log.warn({ drainMs }, 'requests still in flight at the end of the drain; closing their connections');
        }
        server.closeAllConnections();
        await sweeper.stop();
        await keyRotation.stop();
        await closed;
        await storage.close();
      },
    };
  } catch (err) {
    await storage.close();
    throw err;
  }
}
