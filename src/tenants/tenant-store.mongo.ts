import type { Collection, Db } from 'mongodb';

import { isDuplicateKeyError } from '../storage/mongo/duplicate-key.ts';
import {
  newRevision,
  parseNewTenant,
  parseTenantChanges,
  type TenantRecord,
  type TenantStore,
  type TenantStoreOptions,
} from './tenant-store.ts';

type TenantDocument = Omit<TenantRecord, 'id'> & { _id: string };

export interface MongoTenantStoreOptions extends TenantStoreOptions {
  readonly collection?: string;
}

/**
 * TenantStore on MongoDB / FerretDB. create is an insert with the tenant id as `_id` (the
 * race-safe primitive); update is a plain $set of whole fields by `_id` with a random new
 * revision: last writer wins, no conditional update and no $inc, neither of which
 * FerretDB makes atomic (STORES.md).
 */
export function createMongoTenantStore(db: Db, options: MongoTenantStoreOptions = {}): TenantStore {
  const now = options.now ?? (() => new Date());
  const tenants: Collection<TenantDocument> = db.collection(options.collection ?? 'tenants');

  return {
    async get(id) {
      const doc = await tenants.findOne({ _id: id });
      return doc ? toRecord(doc) : undefined;
    },
    async create(input) {
      const { id, displayName, settings } = parseNewTenant(input);
      const at = now();
      try {
        await tenants.insertOne({
          _id: id, displayName, settings, revision: newRevision(), createdAt: at, updatedAt: at,
        });
        return true;
      } catch (error) {
        if (isDuplicateKeyError(error)) return false;
        throw error;
      }
    },
    async update(id, changes) {
      const revision = newRevision();
      const result = await tenants.updateOne(
        { _id: id },
        { $set: { ...parseTenantChanges(changes), revision, updatedAt: now() } },
      );
      return result.matchedCount > 0 ? revision : undefined;
    },
    async list() {
      const docs = await tenants.find({}).sort({ _id: 1 }).toArray();
      return docs.map(toRecord);
    },
  };
}

function toRecord(doc: TenantDocument): TenantRecord {
  return {
    id: doc._id,
    displayName: doc.displayName,
    settings: doc.settings,
    ...(doc.disabled === true && { disabled: true }),
    revision: doc.revision,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
  };
}
