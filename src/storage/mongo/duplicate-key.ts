import { MongoServerError } from 'mongodb';

/**
 * The loser of an insert race on a unique key (`_id` or a unique index): MongoDB's and
 * FerretDB's E11000. That insert is the one race-safe primitive on both (STORES.md).
 */
export function isDuplicateKeyError(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === 11000;
}
