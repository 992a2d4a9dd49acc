import type { ActivationRecord, KeyOrigin, SigningAlg, SigningKeyRecord } from './signing-key-store.ts';

/**
 * candidate: made for an election not yet decided (its maker deletes it if it loses), never
 * published · next: prepared ahead, published (verify only), not signing · active: signs;
 * the kid of the highest generation · retired: published until its successor's activation
 * + retention · removed: no longer published, may be deleted.
 */
export type KeyState = 'candidate' | 'next' | 'active' | 'retired' | 'removed';

export interface KeySummary {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly state: KeyState;
  readonly origin: KeyOrigin;
  readonly createdAt: Date;
  /** The generation and time of the key's latest activation, if any. */
  readonly generation?: number;
  readonly activatedAt?: Date;
  /** When its successor became active (retired and removed keys). */
  readonly retiredAt?: Date;
  /** retiredAt + retention: from then on the key is removed. */
  readonly removeAt?: Date;
}

/**
 * Derives every key's state from immutable records, so concurrent writers never race on
 * a state field. A kid activated more than once (possible only when a rotation read a
 * partial list on a server without snapshot reads) counts by its latest activation.
 *
 * `retentionSeconds` must cover the longest lifetime of a token the key signed, plus the
 * time other nodes may keep signing with it before they reload (cache propagation).
 */
export function deriveKeyStates(
  keys: readonly SigningKeyRecord[],
  activations: readonly ActivationRecord[],
  now: Date,
  retentionSeconds: number,
): KeySummary[] {
  const byAlg = new Map<SigningAlg, ActivationRecord[]>();
  for (const activation of activations) {
    const list = byAlg.get(activation.alg) ?? [];
    list.push(activation);
    byAlg.set(activation.alg, list);
  }
  for (const list of byAlg.values()) list.sort((a, b) => a.generation - b.generation);

  return keys.map((key) => {
    const base = { kid: key.kid, alg: key.alg, origin: key.origin, createdAt: key.createdAt };
    const list = byAlg.get(key.alg) ?? [];
    const index = list.findLastIndex((a) => a.kid === key.kid && a.tenant === key.tenant);
    const own = list[index];
    // A losing candidate is deleted a moment later: publishing it would make two nodes'
    // JWKS differ for no benefit.
    if (own === undefined) return { ...base, state: key.origin === 'election' ? 'candidate' : 'next' };
    const activated = { ...base, generation: own.generation, activatedAt: own.activatedAt };
    const successor = list[index + 1];
    if (successor === undefined) return { ...activated, state: 'active' };
    const retiredAt = successor.activatedAt;
    const removeAt = new Date(retiredAt.getTime() + retentionSeconds * 1000);
    const state = now.getTime() >= removeAt.getTime() ? 'removed' : 'retired';
    return { ...activated, state, retiredAt, removeAt };
  });
}
