import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

import { isValidTenantId } from '../tenants/tenant-store.ts';
import { decryptPrivateJwk, encryptPrivateJwk } from './envelope.ts';
import { KeyIntegrityError, NoNextKeyError } from './errors.ts';
import { deriveKeyStates, type KeyState, type KeySummary } from './key-states.ts';
import type { KeyWrapper } from './kms.ts';
import {
  SIGNING_ALGS,
  type ActivationRecord,
  type KeyOrigin,
  type SigningAlg,
  type SigningKeyRecord,
  type SigningKeyStore,
} from './signing-key-store.ts';

export type { KeyState, KeySummary };

/** RS256 for id_tokens and the widest client support; ES256 signs JWT access tokens. */
export const DEFAULT_SIGNING_ALGS: readonly SigningAlg[] = ['RS256', 'ES256'];

export interface KeyringOptions {
  readonly store: SigningKeyStore;
  readonly wrapper: KeyWrapper;
  readonly now?: () => Date;
}

export interface RetentionOptions {
  /**
   * How long a retired key stays published: the longest token lifetime, plus however long
   * other nodes may keep signing with it before they reload their keys.
   */
  readonly retentionSeconds: number;
}

export interface CleanupOptions extends RetentionOptions {
  /**
   * An unactivated `election` key older than this is an orphan (its maker crashed between
   * losing and deleting it). Default one hour.
   */
  readonly orphanGraceSeconds?: number;
}

/** oidc-provider's `jwks` configuration plus what an operator wants to see. */
export interface SigningKeySet {
  /**
   * Private JWKs with kid, alg and use 'sig'. The active key of each alg comes first
   * without key_ops; next and retired keys carry key_ops ['verify'], so oidc-provider's
   * selectForSign skips them while its JWKS endpoint still publishes them.
   */
  readonly jwks: { keys: JWK[] };
  /** Every stored key of the tenant with its derived state, removed ones included. */
  readonly keys: KeySummary[];
}

export interface ActivationResult {
  readonly alg: SigningAlg;
  readonly kid: string;
  readonly generation: number;
  /** false when another caller won this generation; kid is then the winner's. */
  readonly won: boolean;
}

export type ActiveKids = Partial<Record<SigningAlg, string>>;

export interface Keyring {
  /**
   * Makes sure each alg has an active key, creating and electing one where none is; safe
   * to call from any number of nodes at once. Returns the active kid per alg.
   */
  ensureActiveKeys(tenant: string, algs?: readonly SigningAlg[]): Promise<ActiveKids>;
  /** Stores a new key in state next (published, not signing). Returns its kid. */
  prepareNext(tenant: string, alg: SigningAlg): Promise<string>;
  /**
   * Activates the oldest prepared next key (NoNextKeyError when there is none). With
   * `generation` (the active generation the caller saw, plus one), a caller that saw a stale
   * state loses instead of rotating a second time: how schedulers on several nodes agree.
   */
  activateNext(tenant: string, alg: SigningAlg, options?: { generation?: number }): Promise<ActivationResult>;
  /** A new key becomes active at the next generation; the previous one retires. */
  rotate(tenant: string, alg: SigningAlg): Promise<ActivationResult>;
  /** The tenant's keys for oidc-provider. Call ensureActiveKeys first. */
  loadSigningKeys(tenant: string, options: RetentionOptions): Promise<SigningKeySet>;
  /** States only, nothing decrypted: for admin listings. */
  describeKeys(tenant: string, options: RetentionOptions): Promise<KeySummary[]>;
  /** Deletes removed keys and orphaned election keys; returns their kids. */
  removeExpiredKeys(tenant: string, options: CleanupOptions): Promise<string[]>;
  /**
   * Emergency withdrawal of a compromised key: it stops being published at once (on other
   * nodes when they reload). An active key is first replaced by a new one (rotate), so the
   * alg never goes without an active key. Tokens it signed stop verifying. undefined when the
   * tenant has no such key.
   */
  withdrawKey(tenant: string, kid: string, options: RetentionOptions): Promise<WithdrawResult | undefined>;
}

export interface WithdrawResult {
  readonly kid: string;
  readonly alg: SigningAlg;
  /** Its state before the withdrawal. */
  readonly state: KeyState;
  /** The rotation that replaced it, when it was the active key. */
  readonly replacement?: ActivationResult;
}

/** AAD of a key's envelope: binds the ciphertext to this tenant and kid. */
export function signingKeyContext(tenant: string, kid: string): string {
  return JSON.stringify(['castellan.signing-key.v1', tenant, kid]);
}

const STATE_ORDER: Record<KeyState, number> = { active: 0, next: 1, retired: 2, removed: 3, candidate: 4 };
const DEFAULT_ORPHAN_GRACE_SECONDS = 3600;

export function createKeyring(options: KeyringOptions): Keyring {
  const { store, wrapper } = options;
  const now = options.now ?? (() => new Date());

  async function createKey(tenant: string, alg: SigningAlg, origin: KeyOrigin): Promise<SigningKeyRecord> {
    // RS256: jose's default modulus, 2048 bits.
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
    const record: SigningKeyRecord = {
      kid,
      tenant,
      alg,
      origin,
      createdAt: now(),
      publicJwk: { ...publicJwk, kid, alg, use: 'sig' },
      encryptedPrivateJwk: await encryptPrivateJwk(privateJwk, wrapper, signingKeyContext(tenant, kid)),
    };
    if (!(await store.insertKey(record))) {
      // A fresh thumbprint colliding means a broken random source: stop, sign nothing.
      throw new KeyIntegrityError(`generated key ${kid} already exists`);
    }
    return record;
  }

  /** The active activation, and whether its key document is really there. */
  async function currentActivation(tenant: string, alg: SigningAlg) {
    const activations = await store.listActivations(tenant, alg);
    const latest = activations.at(-1);
    if (latest === undefined) return { generation: 0, latest, usable: false };
    const key = await store.getKey(latest.kid);
    const usable = key !== undefined && key.tenant === tenant && key.alg === alg;
    return { generation: latest.generation, latest, usable };
  }

  async function winnerOf(tenant: string, alg: SigningAlg, generation: number): Promise<ActivationRecord> {
    const winner = (await store.listActivations(tenant, alg)).find((a) => a.generation === generation);
    if (winner === undefined) {
      throw new KeyIntegrityError(`activation ${tenant}:${alg}:${generation} lost but not found`);
    }
    return winner;
  }

  async function activate(key: SigningKeyRecord, generation: number): Promise<ActivationResult> {
    const won = await store.tryActivate({
      tenant: key.tenant, alg: key.alg, generation, kid: key.kid, activatedAt: now(),
    });
    if (won) return { alg: key.alg, kid: key.kid, generation, won };
    const winner = await winnerOf(key.tenant, key.alg, generation);
    return { alg: key.alg, kid: winner.kid, generation, won };
  }

  /** Generate, store, then elect: the activation (what authorises signing) is written last. */
  async function elect(tenant: string, alg: SigningAlg, generation: number): Promise<ActivationResult> {
    const key = await createKey(tenant, alg, 'election');
    const result = await activate(key, generation);
    if (!result.won) {
      try {
        await store.deleteKey(key.kid);
      } catch {
        // Harmless if it stays: an unactivated election key only verifies, and
        // removeExpiredKeys deletes it after the grace period.
      }
    }
    return result;
  }

  async function ensureActiveKey(tenant: string, alg: SigningAlg): Promise<string> {
    const current = await currentActivation(tenant, alg);
    if (current.usable && current.latest) return current.latest.kid;
    // No key yet (generation 1), or the active key's document is gone: elect a new one.
    return (await elect(tenant, alg, current.generation + 1)).kid;
  }

  async function summarise(tenant: string, retentionSeconds: number) {
    const keys = await store.listKeys(tenant);
    const algs = [...new Set(keys.map((k) => k.alg))];
    const activations = (await Promise.all(algs.map((alg) => store.listActivations(tenant, alg)))).flat();
    const summaries = deriveKeyStates(keys, activations, now(), retentionSeconds);
    return { keys, summaries };
  }

  async function privateJwkOf(record: SigningKeyRecord, state: KeyState): Promise<JWK> {
    const jwk = await decryptPrivateJwk(
      record.encryptedPrivateJwk, wrapper, signingKeyContext(record.tenant, record.kid),
    );
    // The envelope binds the kid; this also catches a record whose key was swapped.
    if ((await calculateJwkThumbprint(jwk, 'sha256')) !== record.kid) {
      throw new KeyIntegrityError(`key ${record.kid} does not match its thumbprint`);
    }
    const { key_ops: _ops, ext: _ext, use: _use, alg: _alg, kid: _kid, ...material } = jwk;
    return {
      ...material,
      kid: record.kid,
      alg: record.alg,
      use: 'sig',
      ...(state === 'active' ? {} : { key_ops: ['verify'] }),
    };
  }

  return {
    async ensureActiveKeys(tenant, algs = DEFAULT_SIGNING_ALGS) {
      assertTenant(tenant);
      const unique = [...new Set(algs)];
      unique.forEach(assertAlg);
      const kids = await Promise.all(unique.map((alg) => ensureActiveKey(tenant, alg)));
      return Object.fromEntries(unique.map((alg, i) => [alg, kids[i]])) as ActiveKids;
    },

    async prepareNext(tenant, alg) {
      assertTenant(tenant);
      assertAlg(alg);
      return (await createKey(tenant, alg, 'prepared')).kid;
    },

    async activateNext(tenant, alg, { generation } = {}) {
      assertTenant(tenant);
      assertAlg(alg);
      const activations = await store.listActivations(tenant, alg);
      const following = (activations.at(-1)?.generation ?? 0) + 1;
      if (generation !== undefined) {
        if (!Number.isInteger(generation) || generation < 1 || generation > following) {
          throw new TypeError(`generation ${generation} is not the next one (${following}) nor an earlier one`);
        }
        // Someone already activated that generation: report the winner, rotate nothing.
        if (generation < following) {
          const winner = await winnerOf(tenant, alg, generation);
          return { alg, kid: winner.kid, generation, won: false };
        }
      }
      const activated = new Set(activations.map((a) => a.kid));
      const candidate = (await store.listKeys(tenant)).find(
        (k) => k.alg === alg && k.origin === 'prepared' && !activated.has(k.kid),
      );
      if (candidate === undefined) throw new NoNextKeyError(`no next ${alg} key for tenant ${tenant}`);
      return activate(candidate, following);
    },

    async rotate(tenant, alg) {
      assertTenant(tenant);
      assertAlg(alg);
      const { generation } = await currentActivation(tenant, alg);
      return elect(tenant, alg, generation + 1);
    },

    async loadSigningKeys(tenant, { retentionSeconds }) {
      assertTenant(tenant);
      const { keys, summaries } = await summarise(tenant, retentionSeconds);
      const byKid = new Map(keys.map((k) => [k.kid, k]));
      const published = summaries
        .filter((s) => s.state !== 'removed' && s.state !== 'candidate')
        .sort((a, b) =>
          STATE_ORDER[a.state] - STATE_ORDER[b.state]
          || SIGNING_ALGS.indexOf(a.alg) - SIGNING_ALGS.indexOf(b.alg)
          || b.createdAt.getTime() - a.createdAt.getTime());
      const jwks = await Promise.all(published.map((s) => privateJwkOf(byKid.get(s.kid)!, s.state)));
      return { jwks: { keys: jwks }, keys: summaries };
    },

    async describeKeys(tenant, { retentionSeconds }) {
      assertTenant(tenant);
      return (await summarise(tenant, retentionSeconds)).summaries;
    },

    async removeExpiredKeys(tenant, { retentionSeconds, orphanGraceSeconds = DEFAULT_ORPHAN_GRACE_SECONDS }) {
      assertTenant(tenant);
      const { summaries } = await summarise(tenant, retentionSeconds);
      const orphanedBefore = now().getTime() - orphanGraceSeconds * 1000;
      const doomed = summaries.filter((s) =>
        s.state === 'removed'
        || (s.state === 'candidate' && s.createdAt.getTime() < orphanedBefore));
      for (const s of doomed) await store.deleteKey(s.kid);
      return doomed.map((s) => s.kid);
    },

    async withdrawKey(tenant, kid, { retentionSeconds }) {
      assertTenant(tenant);
      const key = await store.getKey(kid);
      if (key === undefined || key.tenant !== tenant) return undefined;
      const summary = (await summarise(tenant, retentionSeconds)).summaries.find((s) => s.kid === kid);
      const state = summary?.state ?? 'removed';
      let replacement: ActivationResult | undefined;
      if (state === 'active') {
        // The successor first, so ensureActiveKeys never sees the alg without a usable key.
        const { latest, generation } = await currentActivation(tenant, key.alg);
        replacement = latest?.kid === kid ? await elect(tenant, key.alg, generation + 1) : undefined;
      }
      await store.deleteKey(kid);
      return { kid, alg: key.alg, state, ...(replacement ? { replacement } : {}) };
    },
  };
}

function assertTenant(tenant: string): void {
  // Activation ids are "<tenant>:<alg>:<generation>": a ':' in a tenant id could collide.
  if (!isValidTenantId(tenant)) throw new TypeError(`invalid tenant id ${JSON.stringify(tenant)}`);
}

function assertAlg(alg: string): asserts alg is SigningAlg {
  if (!(SIGNING_ALGS as readonly string[]).includes(alg)) {
    throw new TypeError(`unsupported signing alg ${JSON.stringify(alg)}`);
  }
}
