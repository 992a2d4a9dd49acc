import type { Collection, Db } from 'mongodb';

import { isDuplicateKeyError } from '../storage/mongo/duplicate-key.ts';
import {
  LoginTakenError,
  loginKey,
  newUserId,
  parseNewUser,
  userKey,
  type UserRecord,
  type UserStore,
  type UserStoreOptions,
} from './user-store.ts';

type UserDocument = UserRecord & { _id: string };
interface LoginDocument {
  _id: string;
  tenant: string;
  userId: string;
  createdAt: Date;
}

export interface MongoUserStoreOptions extends UserStoreOptions {
  readonly usersCollection?: string;
  readonly loginsCollection?: string;
}

/**
 * UserStore on MongoDB / FerretDB. A login is claimed by inserting its index document
 * (`_id` "<tenant>:<lowercased login>") BEFORE the user: the unique `_id` makes the claim
 * race-safe without a unique secondary index or a transaction, and a crash in between
 * leaves only a claimed login with no user, which grants nothing. Every read is by `_id`.
 */
export function createMongoUserStore(db: Db, options: MongoUserStoreOptions = {}): UserStore {
  const now = options.now ?? (() => new Date());
  const users: Collection<UserDocument> = db.collection(options.usersCollection ?? 'users');
  const logins: Collection<LoginDocument> = db.collection(options.loginsCollection ?? 'user_logins');

  async function findById(tenant: string, id: string): Promise<UserRecord | undefined> {
    const doc = await users.findOne({ _id: userKey(tenant, id) });
    return doc ? toRecord(doc) : undefined;
  }

  return {
    async create(input) {
      const user: UserRecord = { ...parseNewUser(input), id: newUserId(), createdAt: now() };
      const loginId = loginKey(user.tenant, user.login);
      try {
        await logins.insertOne({ _id: loginId, tenant: user.tenant, userId: user.id, createdAt: user.createdAt });
      } catch (error) {
        if (isDuplicateKeyError(error)) throw new LoginTakenError(`login taken in tenant ${user.tenant}`);
        throw error;
      }
      try {
        await users.insertOne({ _id: userKey(user.tenant, user.id), ...user });
      } catch (error) {
        // Release the claim so the login is not stuck; best effort, the error is what matters.
        await logins.deleteOne({ _id: loginId, userId: user.id }).catch(() => undefined);
        throw error;
      }
      return user;
    },
    findById,
    async findByLogin(tenant, login) {
      const claim = await logins.findOne({ _id: loginKey(tenant, login) });
      return claim ? findById(tenant, claim.userId) : undefined;
    },
    async setTotp(tenant, id, totp) {
      const filter = { _id: userKey(tenant, id) };
      const result = totp === undefined
        ? await users.updateOne(filter, { $unset: { totp: '' } })
        : await users.updateOne(filter, { $set: { totp: { ...totp, recoveryCodeHashes: [...totp.recoveryCodeHashes] } } });
      return result.matchedCount === 1;
    },
    async setRecoveryCodeHashes(tenant, id, enrolmentId, hashes) {
      await users.updateOne({ _id: userKey(tenant, id), 'totp.id': enrolmentId }, { $set: { 'totp.recoveryCodeHashes': [...hashes] } });
    },
    async list(tenant, { after, limit = 1000 } = {}) {
      // By tenant, not _id: a scan on FerretDB (STORES.md), acceptable for an operator's listing.
      const filter = after === undefined ? { tenant } : { tenant, _id: { $gt: userKey(tenant, after) } };
      const docs = await users.find(filter).sort({ _id: 1 }).limit(limit).toArray();
      return docs.map(toRecord);
    },
    async delete(tenant, id) {
      const user = await findById(tenant, id);
      if (!user) return false;
      // The user (what signs in) goes first; the login claim after it (no transactions).
      await users.deleteOne({ _id: userKey(tenant, id) });
      await logins.deleteOne({ _id: loginKey(tenant, user.login), userId: id });
      return true;
    },
  };
}

function toRecord(doc: UserDocument): UserRecord {
  return {
    tenant: doc.tenant,
    id: doc.id,
    login: doc.login,
    ...(doc.passwordHash !== undefined && { passwordHash: doc.passwordHash }),
    claims: doc.claims,
    createdAt: doc.createdAt,
    ...(doc.totp !== undefined && doc.totp !== null && { totp: doc.totp }),
  };
}
