import { InvalidRequestError, NotFoundError, TenantNotFoundError } from '../../errors/errors.ts';
import { keyRetiredEvent, keyRotatedEvent } from '../../keys/key-events.ts';
import { NoNextKeyError } from '../../keys/errors.ts';
import type { Keyring, KeySummary } from '../../keys/keyring.ts';
import type { SigningAlg } from '../../keys/signing-key-store.ts';
import type { AuditSink } from '../../observability/audit.ts';
import { signedTokenRetentionSeconds, tenantSettingsSchema, type TenantSettings } from '../../tenants/tenant-settings.ts';
import { isValidTenantId } from '../../tenants/tenant-store.ts';
import type { AdminActor } from './admin-actor.ts';

/** What the key admin needs of the tenant registry (src/tenants/tenant-registry.ts). */
export interface KeyAdminTenants {
  /** The tenant's validated settings; TenantNotFoundError for an unknown tenant. */
  get(tenantId: string): Promise<{ settings: TenantSettings }>;
  /** Forget this node's provider so it is rebuilt with the changed keys. */
  invalidate(tenantId: string): void;
}

export interface KeyAdminDeps {
  keyring: Keyring;
  tenants: KeyAdminTenants;
  audit: AuditSink;
  /**
   * The tenant store: with it, tenants are read from their records, so a disabled tenant's
   * keys can still be listed and retired (the registry answers for enabled tenants only).
   */
  storage?: { tenants: { get(id: string): Promise<{ settings: Record<string, unknown> } | undefined> } };
}

/** One signing key as an operator sees it: public facts only, dates as ISO 8601. */
export interface KeyInfo {
  kid: string;
  alg: SigningAlg;
  /** next: published, not signing yet · active: signs · retired: published until removeAt · removed: no longer published. */
  state: 'next' | 'active' | 'retired' | 'removed';
  createdAt: string;
  activatedAt?: string;
  retiredAt?: string;
  removeAt?: string;
}

export interface RotatedKey {
  alg: SigningAlg;
  /** The key that signs from now on. */
  kid: string;
  /** The key it replaced, now retired (still published until its tokens have expired). */
  previousKid?: string;
  generation: number;
}

export interface RetiredKey {
  kid: string;
  alg: SigningAlg;
  /** Its state before it was withdrawn. */
  previousState: string;
  /** The key that took over signing, when the retired key was the active one. */
  replacement?: RotatedKey;
}

export interface KeyAdmin {
  list(tenant: string): Promise<KeyInfo[]>;
  /**
   * Rotates alg, or every signing alg of the tenant (RS256 and ES256 by default). A next key
   * already published (by the schedule) is the one activated; otherwise a fresh key.
   */
  rotate(tenant: string, options: { alg?: SigningAlg; actor: AdminActor }): Promise<RotatedKey[]>;
  /**
   * Emergency retirement of a compromised key: it stops signing and stops being published
   * (tokens it signed stop verifying). The active key is first replaced by a fresh one
   * (rotate), then deleted; a next or retired key is deleted. NotFoundError for an unknown kid.
   */
  retire(tenant: string, kid: string, options: { actor: AdminActor }): Promise<RetiredKey>;
}

function keyInfo(summary: KeySummary): KeyInfo | undefined {
  // A candidate is an undecided election key, never published, gone a moment later.
  if (summary.state === 'candidate') return undefined;
  return {
    kid: summary.kid,
    alg: summary.alg,
    state: summary.state,
    createdAt: summary.createdAt.toISOString(),
    ...(summary.activatedAt ? { activatedAt: summary.activatedAt.toISOString() } : {}),
    ...(summary.retiredAt ? { retiredAt: summary.retiredAt.toISOString() } : {}),
    ...(summary.removeAt ? { removeAt: summary.removeAt.toISOString() } : {}),
  };
}

/**
 * Signing keys of a tenant for the admin API and the CLI: list, rotate, retire. Every change
 * is audited (`key_rotated`, `key_retired`, with the actor; never key material) and this
 * node's provider is rebuilt at once; other nodes follow within the registry's re-read bound
 * (about 10 s).
 */
export function createKeyAdmin({ keyring, tenants, audit, storage }: KeyAdminDeps): KeyAdmin {
  async function settingsOf(tenant: string): Promise<{ settings: TenantSettings }> {
    if (storage === undefined) return tenants.get(tenant);
    const record = isValidTenantId(tenant) ? await storage.tenants.get(tenant) : undefined;
    if (!record) throw new TenantNotFoundError(tenant);
    const parsed = tenantSettingsSchema.safeParse(record.settings);
    if (!parsed.success) throw new InvalidRequestError(`tenant "${tenant}" has invalid settings; fix them first`);
    return { settings: parsed.data };
  }

  async function refresh(tenant: string): Promise<void> {
    tenants.invalidate(tenant);
    // Rebuild now rather than on the next request; a failure shows there instead.
    await tenants.get(tenant).catch(() => undefined);
  }

  /**
   * A new active key for alg: the oldest next key if one is published already (resource
   * servers may know it), else a fresh one. A concurrent rotation of the same generation may
   * win: its key is then the new one.
   */
  async function rotateAlg(tenant: string, alg: SigningAlg, summaries: readonly KeySummary[]) {
    const active = summaries.find((s) => s.alg === alg && s.state === 'active');
    const hasNext = summaries.some((s) => s.alg === alg && s.state === 'next');
    if (hasNext && active?.generation !== undefined) {
      try {
        return await keyring.activateNext(tenant, alg, { generation: active.generation + 1 });
      } catch (err) {
        // Withdrawn meanwhile: make a fresh one instead.
        if (!(err instanceof NoNextKeyError)) throw err;
      }
    }
    return keyring.rotate(tenant, alg);
  }

  return {
    async list(tenant) {
      const { settings } = await settingsOf(tenant);
      const summaries = await keyring.describeKeys(tenant, { retentionSeconds: signedTokenRetentionSeconds(settings) });
      return summaries.map(keyInfo).filter((k): k is KeyInfo => k !== undefined);
    },

    async rotate(tenant, { alg, actor }) {
      const { settings } = await settingsOf(tenant);
      if (alg !== undefined && !settings.signingAlgorithms.includes(alg)) {
        throw new InvalidRequestError(`tenant "${tenant}" does not sign with ${alg} (signingAlgorithms: ${settings.signingAlgorithms.join(', ')})`);
      }
      const algs = alg === undefined ? settings.signingAlgorithms : [alg];
      const summaries = await keyring.describeKeys(tenant, { retentionSeconds: signedTokenRetentionSeconds(settings) });
      const rotated: RotatedKey[] = [];
      try {
        for (const a of algs) {
          const result = await rotateAlg(tenant, a, summaries);
          const previousKid = summaries.find((s) => s.alg === a && s.state === 'active')?.kid;
          rotated.push({ alg: a, kid: result.kid, ...(previousKid === undefined ? {} : { previousKid }), generation: result.generation });
          await audit.record(keyRotatedEvent({ tenant, alg: a, kid: result.kid, previousKid, generation: result.generation, actor, reason: 'command' }));
        }
      } finally {
        await refresh(tenant);
      }
      return rotated;
    },

    async retire(tenant, kid, { actor }) {
      const { settings } = await settingsOf(tenant);
      let withdrawn;
      try {
        withdrawn = await keyring.withdrawKey(tenant, kid, { retentionSeconds: signedTokenRetentionSeconds(settings) });
      } finally {
        await refresh(tenant);
      }
      if (withdrawn === undefined) throw new NotFoundError(`tenant "${tenant}" has no key "${kid.slice(0, 100)}"`);
      const { alg, state, replacement } = withdrawn;
      if (replacement) {
        await audit.record(keyRotatedEvent({ tenant, alg, kid: replacement.kid, previousKid: kid, generation: replacement.generation, actor, reason: 'retire' }));
      }
      await audit.record(keyRetiredEvent({ tenant, alg, kid, previousState: state, replacementKid: replacement?.kid, actor }));
      return {
        kid,
        alg,
        previousState: state,
        ...(replacement ? { replacement: { alg, kid: replacement.kid, previousKid: kid, generation: replacement.generation } } : {}),
      };
    },
  };
}
