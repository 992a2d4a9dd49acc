/**
 * "Exactly once" marks: the first claim of a key wins, every later or concurrent claim of
 * the same key loses. Used where a value may be accepted only once (a TOTP time step,
 * RFC 6238 §5.2; a recovery code). Each backend uses its one race-safe primitive
 * (STORES.md): a Map in one process, SET NX EX in Redis, an insert with a unique `_id` in
 * MongoDB / FerretDB.
 *
 * A mark is kept at least `ttlSeconds`, perhaps longer; callers choose keys that are never
 * legitimately claimed twice (a TOTP key names its time step), so a mark outliving its TTL
 * refuses nothing that should pass.
 */
export interface OneTimeMarks {
  /** true for the one winner of this key; false if it was claimed before and not yet forgotten. */
  claim(key: string, ttlSeconds: number): Promise<boolean>;
}

/** Marks for keys of short life (Redis where there is Redis) and of long life (durable). */
export interface OneTimeMarkStores {
  shortLived: OneTimeMarks;
  lasting: OneTimeMarks;
}

/** In-process marks: the single-node and test default. */
export function createMemoryOneTimeMarks(now: () => number = Date.now): OneTimeMarks {
  const marks = new Map<string, number>(); // key → expiry (epoch ms)
  let nextPrune = 0;
  return {
    async claim(key, ttlSeconds) {
      const at = now();
      if (at >= nextPrune) {
        for (const [k, expiresAt] of marks) if (expiresAt <= at) marks.delete(k);
        nextPrune = at + 60_000;
      }
      const expiresAt = marks.get(key);
      if (expiresAt !== undefined && expiresAt > at) return false;
      marks.set(key, at + ttlSeconds * 1000);
      return true;
    },
  };
}

/** One process's marks serve both lifetimes. */
export function memoryOneTimeMarkStores(): OneTimeMarkStores {
  const marks = createMemoryOneTimeMarks();
  return { shortLived: marks, lasting: marks };
}
