import { createHash } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { JWKS } from 'oidc-provider';
import type { Logger } from 'pino';
import { TenantNotFoundError } from '../errors/errors.ts';
import type { AuditSink } from '../observability/audit.ts';
import type { PolicyHooks } from '../policy/hooks.ts';
import type { RetryCache } from '../grants/refresh-retry/refresh-retry.ts';
import type { DocumentCache } from '../registration/cimd/document-cache.ts';
import type { RegistrationAbuseStore } from '../registration/abuse/abuse-store.ts';
import { watchClientUse } from '../registration/abuse/client-usage.ts';
import { createAdapterFactory, type ModelStores } from '../storage/oidc-adapter.ts';
import { createTenantProvider, type AccountLookup } from './provider-factory.ts';
import { isValidTenantId } from './tenant-store.ts';
import { signedTokenRetentionSeconds, tenantSettingsSchema, type SigningAlgorithm, type TenantSettings } from './tenant-settings.ts';

/** What the registry needs of the tenant store. */
export interface TenantSource {
  get(id: string): Promise<{ id: string; revision: string; settings: Record<string, unknown>; disabled?: boolean } | undefined>;
}

/** What the registry needs of the keyring. */
export interface SigningKeySource {
  ensureActiveKeys(tenant: string, algs: SigningAlgorithm[]): Promise<unknown>;
  loadSigningKeys(tenant: string, options: { retentionSeconds: number }): Promise<{ jwks: JWKS }>;
}

export interface TenantRuntime {
  tenantId: string;
  issuer: string;
  settings: TenantSettings;
  provider: Provider;
  /** provider.callback(), built once: it composes the whole middleware stack. */
  handle: ReturnType<Provider['callback']>;
  /** Keys the CSRF tokens of this tenant's pages (derived from its cookie keys). */
  csrfKey: Buffer;
}

export interface TenantRegistryDeps {
  baseUrl: string;
  tenants: TenantSource;
  keys: SigningKeySource;
  modelStores: (tenantId: string) => ModelStores;
  accounts: (tenantId: string) => AccountLookup;
  policy: PolicyHooks;
  cookieKeys: (tenantId: string) => string[];
  /** Where the last use of self-registered clients is recorded. */
  registrationAbuse: RegistrationAbuseStore;
  documentCache: DocumentCache;
  fetchCa: string | Buffer | undefined;
  audit: AuditSink;
  retryCache: RetryCache;
  log: Logger;
  /** How long a built provider is trusted before its tenant record and keys are re-read. */
  refreshAfterMs?: number;
  now?: () => number;
}

interface CacheEntry {
  runtime: TenantRuntime;
  fingerprint: string;
  checkedAt: number;
}

export class InvalidTenantSettingsError extends Error {
  readonly code = 'INVALID_TENANT_SETTINGS';
  constructor(tenant: string, detail: string) {
    super(`tenant "${tenant}" has invalid settings: ${detail}`);
    this.name = 'InvalidTenantSettingsError';
  }
}

/**
 * One oidc-provider per tenant, created lazily and cached. A cached provider is re-checked
 * after `refreshAfterMs` (or at once after invalidate(), which cross-node pub/sub calls) and
 * rebuilt when the tenant's settings revision or its published keys changed.
 */
/**
 * Unknown (or disabled) tenant ids are remembered this long, at most this many: a client
 * polling a wrong issuer, or a flood of one made-up id, costs one store read per interval.
 */
const MISS_TTL_MS = 2_000;
const MAX_MISSES = 10_000;

export class TenantRegistry {
  readonly #deps: TenantRegistryDeps;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #misses = new Map<string, number>();
  readonly #building = new Map<string, Promise<TenantRuntime>>();
  readonly #refreshAfterMs: number;
  readonly #now: () => number;

  constructor(deps: TenantRegistryDeps) {
    this.#deps = deps;
    this.#refreshAfterMs = deps.refreshAfterMs ?? 10_000;
    this.#now = deps.now ?? Date.now;
  }

  issuerFor(tenantId: string): string {
    return `${this.#deps.baseUrl}/t/${tenantId}`;
  }

  /** The tenant's runtime, or TenantNotFoundError. */
  async get(tenantId: string): Promise<TenantRuntime> {
    // The id check (a zod parse) comes after the two lookups, so a cached tenant (nearly every
    // request) skips it: only checked ids ever enter #misses and #cache (#load runs after
    // the check), so an unchecked id finds nothing in either and is checked below.
    const missedAt = this.#misses.get(tenantId);
    if (missedAt !== undefined) {
      if (this.#now() - missedAt < MISS_TTL_MS) throw new TenantNotFoundError(tenantId);
      this.#misses.delete(tenantId);
    }
    const cached = this.#cache.get(tenantId);
    if (cached && this.#now() - cached.checkedAt < this.#refreshAfterMs) return cached.runtime;
    if (!isValidTenantId(tenantId)) throw new TenantNotFoundError(tenantId);
    // Single flight: concurrent first requests build one provider, not one each.
    let pending = this.#building.get(tenantId);
    if (!pending) {
      pending = this.#load(tenantId, cached).finally(() => this.#building.delete(tenantId));
      this.#building.set(tenantId, pending);
    }
    return pending;
  }

  /** Whether this node holds the tenant's provider (however old): naming it costs no lookup of an unknown id. */
  holds(tenantId: string): boolean {
    return this.#cache.has(tenantId);
  }

  /** Forget a tenant's provider so the next request re-reads its settings and keys. */
  invalidate(tenantId: string): void {
    this.#misses.delete(tenantId);
    const cached = this.#cache.get(tenantId);
    if (cached) cached.checkedAt = Number.NEGATIVE_INFINITY;
  }

  async #load(tenantId: string, cached: CacheEntry | undefined): Promise<TenantRuntime> {
    const record = await this.#deps.tenants.get(tenantId);
    // A disabled tenant is as good as unknown: discovery, tokens, introspection all 404.
    if (!record || record.disabled === true) {
      this.#cache.delete(tenantId);
      // Oldest first out: a Map iterates in insertion order.
      if (this.#misses.size >= MAX_MISSES) this.#misses.delete(this.#misses.keys().next().value ?? '');
      this.#misses.set(tenantId, this.#now());
      throw new TenantNotFoundError(tenantId);
    }
    const parsed = tenantSettingsSchema.safeParse(record.settings);
    if (!parsed.success) {
      throw new InvalidTenantSettingsError(tenantId, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    }
    const settings = parsed.data;
    await this.#deps.keys.ensureActiveKeys(tenantId, settings.signingAlgorithms);
    const { jwks } = await this.#deps.keys.loadSigningKeys(tenantId, {
      retentionSeconds: signedTokenRetentionSeconds(settings),
    });
    const fingerprint = createHash('sha256')
      .update(record.revision)
      .update(JSON.stringify(jwks.keys.map((k) => [k.kid, k.key_ops ?? null])))
      .digest('base64url');
    if (cached && cached.fingerprint === fingerprint) {
      cached.checkedAt = this.#now();
      return cached.runtime;
    }
    const issuer = this.issuerFor(tenantId);
    const provider = createTenantProvider({
      tenantId,
      issuer,
      settings,
      jwks,
      adapter: createAdapterFactory(this.#deps.modelStores(tenantId)),
      findAccount: this.#deps.accounts(tenantId),
      cookieKeys: this.#deps.cookieKeys(tenantId),
      policy: this.#deps.policy,
      documentCache: this.#deps.documentCache,
      fetchCa: this.#deps.fetchCa,
      audit: this.#deps.audit,
      retryCache: this.#deps.retryCache,
      onRetryCacheError: (err) => this.#deps.log.warn({ err, tenant: tenantId }, 'could not keep a refresh answer for retries'),
      onCimdRefused: (refusal) => this.#deps.log.info({ ...refusal, tenant: refusal.tenantId }, 'client ID metadata document refused'),
    });
    watchClientUse(provider, tenantId, this.#deps.registrationAbuse, (err) => this.#deps.log.warn({ err, tenant: tenantId }, 'recording a client\'s use failed'));
    provider.on('server_error', (_ctx, err) => this.#deps.log.error({ err, tenant: tenantId }, 'oidc-provider server error'));
    const cookieKeys = this.#deps.cookieKeys(tenantId);
    const csrfKey = createHash('sha256').update('castellan csrf').update(cookieKeys[0] ?? '').digest();
    const runtime: TenantRuntime = { tenantId, issuer, settings, provider, handle: provider.callback(), csrfKey };
    this.#cache.set(tenantId, { runtime, fingerprint, checkedAt: this.#now() });
    this.#deps.log.info({ tenant: tenantId, kids: jwks.keys.map((k) => k.kid) }, cached ? 'tenant provider rebuilt' : 'tenant provider created');
    return runtime;
  }
}
