import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import type { Logger } from 'pino';
import { createAccountService, type AccountService } from '../accounts/accounts.ts';
import { createMemoryUserStore } from '../accounts/user-store.memory.ts';
import { createMongoUserStore } from '../accounts/user-store.mongo.ts';
import type { UpstreamLinkStore } from '../accounts/upstream-links.ts';
import { createMemoryUpstreamLinkStore } from '../accounts/upstream-links.memory.ts';
import { createMongoAuditEventStore, type AuditEventStore } from '../observability/audit-events.mongo.ts';
import { createMongoUpstreamLinkStore } from '../accounts/upstream-links.mongo.ts';
import type { Settings } from '../config/settings.ts';
import { createMemorySigningKeyStore } from '../keys/signing-key-store.memory.ts';
import { createMongoSigningKeyStore } from '../keys/signing-key-store.mongo.ts';
import type { SigningKeyStore } from '../keys/signing-key-store.ts';
import { createMemoryTenantStore } from '../tenants/tenant-store.memory.ts';
import { createMongoTenantStore } from '../tenants/tenant-store.mongo.ts';
import type { TenantStore } from '../tenants/tenant-store.ts';
import { createMemoryDocumentCache, createRedisDocumentCache, type DocumentCache } from '../registration/cimd/document-cache.ts';
import type { RegistrationAbuseStore } from '../registration/abuse/abuse-store.ts';
import { createMemoryRegistrationAbuseStore } from '../registration/abuse/abuse-store.memory.ts';
import { createRedisRegistrationAbuseStore } from '../registration/abuse/abuse-store.redis.ts';
import { memoryLoginLimiters, redisLoginLimiters, type LoginLimiters } from '../accounts/login-throttle.ts';
import { createMemoryRetryCache, createRedisRetryCache, type RetryCache } from '../grants/refresh-retry/refresh-retry.ts';
import { createMemoryDeviceLimits, createRedisDeviceLimits, type DeviceLimits } from '../grants/device/device-limits.ts';
import { createMemoryEndpointLimitCounters, createRedisEndpointLimitCounters, type EndpointLimitCounters } from '../http/rate-limit-store.ts';
import { createMemoryModelStores } from './memory/memory-model-store.ts';
import { createMongoModelStores } from './mongo/mongo-model-store.ts';
import { guardedStore, type ModelStores } from './oidc-adapter.ts';
import type { RecordLister } from './model-store.ts';
import { createRedisModelStores } from './redis/redis-model-store.ts';
import { memoryOneTimeMarkStores, type OneTimeMarkStores } from './one-time-marks.ts';
import { createMongoOneTimeMarks } from './mongo/one-time-marks.ts';
import { createRedisOneTimeMarks } from './redis/one-time-marks.ts';
import { ClientCache } from './client-cache.ts';
import { createRedisClientChangeBus, type RedisClientChangeBus } from './redis/client-change-bus.ts';
import { createRedisReadCopies, type RedisReadCopies } from './redis/read-copies.ts';
import { createRedisAuditJournal } from './redis/audit-journal.redis.ts';
import type { AuditJournal } from '../observability/audit-journal.ts';

/** Everything Castellan keeps, behind interfaces; which servers hold it is decided here only. */
export interface Storage {
  kind: Settings['storage'];
  /** The model stores of one tenant: durable (MongoDB) and ephemeral (Redis). */
  modelStores(tenant: string): ModelStores;
  /** Operators' listings of one tenant's durable records (clients, grants): scans, never on a hot path. */
  records(tenant: string): RecordLister;
  tenants: TenantStore;
  users: AccountService;
  /** Upstream identities (issuer, sub) linked to local users. */
  upstreamLinks: UpstreamLinkStore;
  /** The tenants' hash-chained audit events (MongoDB only; src/observability/audit-chain.ts). */
  auditEvents: AuditEventStore | undefined;
  /** Where the token endpoints' audit events wait for the chain (Redis only; src/observability/audit-journal.ts). */
  auditJournal: AuditJournal | undefined;
  signingKeys: SigningKeyStore;
  /** Fetched Client ID Metadata Documents, shared by every node (Redis) where there is Redis. */
  documentCache: DocumentCache;
  /** Rate limits, maximum and last use of self-registered clients: Redis where there is Redis, else per process. */
  registrationAbuse: RegistrationAbuseStore;
  /** Device flow polling and user-code attempt limits (Redis where there is Redis). */
  deviceLimits: DeviceLimits;
  /** Failed sign-in counters (Redis where there is Redis). */
  loginLimiters: LoginLimiters;
  /** Request counters of the endpoint rate limits (Redis where there is Redis; src/http/rate-limit.ts). */
  endpointLimits: EndpointLimitCounters;
  /** Sealed answers for refresh-token retries within the grace. */
  retryCache: RetryCache;
  /** "Exactly once" marks: used TOTP steps (Redis where there is Redis) and recovery codes (MongoDB). */
  oneTimeMarks: OneTimeMarkStores;
  /** True when every server behind the storage answers. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

function databaseName(settings: Settings): string {
  if (settings.mongodbDatabase) return settings.mongodbDatabase;
  const path = new URL(settings.mongodbUrl ?? 'mongodb://localhost/').pathname.replace(/^\//, '');
  return path || 'castellan';
}

function openMemory(): Storage {
  const models = createMemoryModelStores();
  return {
    kind: 'memory',
    modelStores: (tenant) => {
      const store = models.forNamespace(tenant);
      return { durable: store, ephemeral: store };
    },
    records: (tenant) => models.forNamespace(tenant),
    tenants: createMemoryTenantStore(),
    users: createAccountService({ users: createMemoryUserStore() }),
    upstreamLinks: createMemoryUpstreamLinkStore(),
    auditEvents: undefined,
    auditJournal: undefined,
    signingKeys: createMemorySigningKeyStore(),
    documentCache: createMemoryDocumentCache(),
    registrationAbuse: createMemoryRegistrationAbuseStore(),
    deviceLimits: createMemoryDeviceLimits(),
    loginLimiters: memoryLoginLimiters(),
    endpointLimits: createMemoryEndpointLimitCounters(),
    retryCache: createMemoryRetryCache(),
    oneTimeMarks: memoryOneTimeMarkStores(),
    ping: async () => true,
    close: async () => {},
  };
}

async function openMongo(settings: Settings, mongodbUrl: string, log: Logger): Promise<Storage> {
  // Every wait on MongoDB is bounded (settings.storeTimeoutMs): finding the server, taking a
  // pooled connection, connecting, and each reply. A slow or hung server costs a request a
  // 503 (isStoreUnavailable), never a hang.
  const timeout = settings.storeTimeoutMs;
  const client = new MongoClient(mongodbUrl, {
    serverSelectionTimeoutMS: timeout,
    waitQueueTimeoutMS: timeout,
    connectTimeoutMS: timeout,
    socketTimeoutMS: timeout,
    appName: 'castellan',
  });
  await client.connect();
  let redis: Redis | undefined;
  let clientBus: RedisClientChangeBus | undefined;
  try {
    const db = client.db(databaseName(settings));
    const durable = createMongoModelStores(db);
    const signingKeys = createMongoSigningKeyStore(db);
    const indexes = await durable.ensureIndexes();
    await signingKeys.ensureIndexes();
    const lastingMarks = createMongoOneTimeMarks(db);
    await lastingMarks.ensureIndexes();
    let shortLivedMarks: OneTimeMarkStores['shortLived'] = lastingMarks;
    if (!indexes.ttl) log.info('MongoDB server refused TTL indexes: expiry is enforced on read and by the sweeper');
    durable.startSweeper();

    let ephemeral: ((tenant: string) => ModelStores['ephemeral']) | undefined;
    let documentCache: DocumentCache = createMemoryDocumentCache();
    let registrationAbuse = createMemoryRegistrationAbuseStore();
    let deviceLimits = createMemoryDeviceLimits();
    let loginLimiters = memoryLoginLimiters();
    let endpointLimits = createMemoryEndpointLimitCounters();
    let retryCache = createMemoryRetryCache();
    // Clients are cached per node (client-cache.ts); several nodes need Redis for invalidation.
    const clientCache = new ClientCache({ onPublishError: (err) => log.warn({ err }, 'announcing a client change failed') });
    let readCopies: RedisReadCopies | undefined;
    if (settings.redisUrl) {
      // commandTimeout: a Redis that stops answering fails each command after the store
      // timeout (503) instead of holding requests; maxRetriesPerRequest: while disconnected,
      // a command fails after two reconnection attempts. enableAutoPipelining: the commands
      // of one event-loop tick go out in one write (introspection's three GETs, one per model
      // oidc-provider tries); MULTI, SUBSCRIBE and the like are left out by ioredis, and each
      // pipelined command keeps its own reply, error and commandTimeout.
      redis = new Redis(settings.redisUrl, {
        lazyConnect: true,
        maxRetriesPerRequest: 2,
        connectTimeout: timeout,
        commandTimeout: timeout,
        enableAutoPipelining: true,
      });
      // ioredis reconnects by itself; say so in the log once per 10 s, not once per attempt.
      let lastReported = 0;
      redis.on('error', (err: Error) => {
        if (Date.now() - lastReported < 10_000) return;
        lastReported = Date.now();
        log.warn({ err: err.message }, 'Redis connection error; reconnecting');
      });
      await redis.connect();
      const stores = createRedisModelStores(redis, { keyPrefix: settings.redisPrefix });
      ephemeral = (tenant) => stores.forNamespace(tenant);
      documentCache = createRedisDocumentCache(redis, { prefix: settings.redisPrefix });
      registrationAbuse = createRedisRegistrationAbuseStore(redis, { keyPrefix: settings.redisPrefix });
      deviceLimits = createRedisDeviceLimits(redis, settings.redisPrefix);
      loginLimiters = redisLoginLimiters(redis, settings.redisPrefix);
      endpointLimits = createRedisEndpointLimitCounters(redis, settings.redisPrefix);
      retryCache = createRedisRetryCache(redis, settings.redisPrefix);
      shortLivedMarks = createRedisOneTimeMarks(redis, settings.redisPrefix);
      readCopies = createRedisReadCopies(redis, { keyPrefix: settings.redisPrefix });
      clientBus = createRedisClientChangeBus(redis, {
        prefix: settings.redisPrefix,
        onChange: (ns, clientId) => clientCache.invalidate(ns, clientId),
        onListening: () => clientCache.clear(),
        onDeaf: () => clientCache.clear(),
        onError: (err) => log.debug({ err: err.message }, 'client change subscription error'),
      });
      clientCache.attachBus(clientBus);
      // Until the subscription is confirmed the node caches no clients (it keeps trying).
      if (!(await clientBus.ready(10_000))) log.warn('client change subscription not confirmed yet: clients are not cached until it is');
    }
    const connectedRedis = redis;
    return {
      kind: settings.storage,
      modelStores: (tenant) => {
        const store = durable.forNamespace(tenant);
        const cached = clientCache.wrap(tenant, readCopies ? readCopies.wrap(tenant, store) : store);
        return { durable: cached, ephemeral: ephemeral ? ephemeral(tenant) : cached };
      },
      // Straight to MongoDB, the source of truth: listings bypass the per-node caches.
      records: (tenant) => durable.forNamespace(tenant),
      tenants: createMongoTenantStore(db),
      // Read by oidc-provider's findAccount: an outage must be its 503, not a 500.
      users: createAccountService({ users: guardedStore(createMongoUserStore(db)) }),
      upstreamLinks: createMongoUpstreamLinkStore(db),
      auditEvents: createMongoAuditEventStore(db),
      auditJournal: connectedRedis && createRedisAuditJournal(connectedRedis, settings.redisPrefix),
      signingKeys,
      documentCache,
      registrationAbuse,
      deviceLimits,
      loginLimiters,
      endpointLimits,
      retryCache,
      oneTimeMarks: { shortLived: shortLivedMarks, lasting: lastingMarks },
      async ping() {
        await db.command({ ping: 1 });
        if (connectedRedis) await connectedRedis.ping();
        return true;
      },
      async close() {
        await durable.close();
        await clientBus?.close();
        connectedRedis?.disconnect();
        await client.close();
      },
    };
  } catch (err) {
    await clientBus?.close();
    redis?.disconnect();
    await client.close();
    throw err;
  }
}

export async function openStorage(settings: Settings, log: Logger): Promise<Storage> {
  if (!settings.mongodbUrl) return openMemory();
  return openMongo(settings, settings.mongodbUrl, log);
}
