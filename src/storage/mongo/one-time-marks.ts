import { MongoServerError, type Collection, type Db } from 'mongodb';
import { isDuplicateKeyError } from './duplicate-key.ts';
import type { OneTimeMarks } from '../one-time-marks.ts';

interface MarkDocument {
  _id: string;
  expiresAt: Date;
}

export interface MongoOneTimeMarks extends OneTimeMarks {
  /** A TTL index where the server accepts one (FerretDB does not: the claims sweep instead). */
  ensureIndexes(): Promise<void>;
}

const NOT_IMPLEMENTED = 238;
const SWEEP_EVERY_MS = 60_000;

/**
 * Marks in MongoDB / FerretDB: the claim is an insert with the key as `_id`, the one
 * race-safe "exactly once" on both servers (STORES.md); the duplicate-key loser loses. An
 * expired mark is not re-armed (that would be a non-atomic update): it stays until swept,
 * which the key contract allows. Expired marks are deleted at most once a minute, by a
 * claim, so nothing else has to run.
 */
export function createMongoOneTimeMarks(db: Db, collectionName = 'one_time_marks', now: () => number = Date.now): MongoOneTimeMarks {
  const marks: Collection<MarkDocument> = db.collection(collectionName);
  let nextSweep = 0;

  function sweep(at: number): void {
    if (at < nextSweep) return;
    nextSweep = at + SWEEP_EVERY_MS;
    // Best effort and off the request's path: a failed sweep only keeps old marks longer.
    marks.deleteMany({ expiresAt: { $lte: new Date(at) } }).catch(() => undefined);
  }

  return {
    async claim(key, ttlSeconds) {
      const at = now();
      sweep(at);
      try {
        await marks.insertOne({ _id: key, expiresAt: new Date(at + ttlSeconds * 1000) });
        return true;
      } catch (error) {
        if (isDuplicateKeyError(error)) return false;
        throw error;
      }
    },
    async ensureIndexes() {
      try {
        await marks.createIndex({ expiresAt: 1 }, { expireAfterSeconds: 0 });
      } catch (error) {
        if (!(error instanceof MongoServerError && error.code === NOT_IMPLEMENTED)) throw error;
      }
    },
  };
}
