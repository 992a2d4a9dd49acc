import type { Collection, Db } from 'mongodb';

import { isDuplicateKeyError } from '../storage/mongo/duplicate-key.ts';
import {
  activationId,
  type ActivationRecord,
  type SigningAlg,
  type SigningKeyRecord,
  type SigningKeyStore,
} from './signing-key-store.ts';

type KeyDocument = Omit<SigningKeyRecord, 'kid'> & { _id: string };
type ActivationDocument = ActivationRecord & { _id: string };

export interface MongoSigningKeyStoreOptions {
  readonly keysCollection?: string;
  readonly activationsCollection?: string;
}

export interface MongoSigningKeyStore extends SigningKeyStore {
  /** Secondary indexes for real MongoDB (FerretDB accepts them but scans anyway). */
  ensureIndexes(): Promise<void>;
}

/**
 * SigningKeyStore on MongoDB / FerretDB. Writes are single-document inserts and deletes;
 * the election is an insert with a unique `_id`. Listing by tenant is a query on a
 * non-_id field: it runs when a tenant's provider is built, not per request.
 */
export function createMongoSigningKeyStore(
  db: Db,
  options: MongoSigningKeyStoreOptions = {},
): MongoSigningKeyStore {
  const keys: Collection<KeyDocument> = db.collection(options.keysCollection ?? 'signing_keys');
  const activations: Collection<ActivationDocument> = db.collection(
    options.activationsCollection ?? 'signing_key_activations',
  );

  return {
    async ensureIndexes() {
      await keys.createIndex({ tenant: 1, createdAt: 1 });
      await activations.createIndex({ tenant: 1, alg: 1, generation: 1 });
    },
    async insertKey(key) {
      const { kid, ...rest } = key;
      try {
        await keys.insertOne({ _id: kid, ...rest });
        return true;
      } catch (error) {
        if (isDuplicateKeyError(error)) return false;
        throw error;
      }
    },
    async getKey(kid) {
      const doc = await keys.findOne({ _id: kid });
      return doc ? toKeyRecord(doc) : undefined;
    },
    async listKeys(tenant) {
      const docs = await keys.find({ tenant }).sort({ createdAt: 1, _id: 1 }).toArray();
      return docs.map(toKeyRecord);
    },
    async deleteKey(kid) {
      await keys.deleteOne({ _id: kid });
    },
    async tryActivate(activation) {
      const _id = activationId(activation.tenant, activation.alg, activation.generation);
      try {
        await activations.insertOne({ _id, ...activation });
        return true;
      } catch (error) {
        if (isDuplicateKeyError(error)) return false;
        throw error;
      }
    },
    async listActivations(tenant: string, alg: SigningAlg) {
      const docs = await activations.find({ tenant, alg }).sort({ generation: 1 }).toArray();
      return docs.map(({ tenant, alg, generation, kid, activatedAt }) => ({
        tenant,
        alg,
        generation,
        kid,
        activatedAt,
      }));
    },
  };
}

function toKeyRecord(doc: KeyDocument): SigningKeyRecord {
  return {
    kid: doc._id,
    tenant: doc.tenant,
    alg: doc.alg,
    origin: doc.origin,
    createdAt: doc.createdAt,
    publicJwk: doc.publicJwk,
    encryptedPrivateJwk: doc.encryptedPrivateJwk,
  };
}
