import { describe, expect, it } from 'vitest';

import { createMongoUserStore } from '../../src/accounts/user-store.mongo.ts';
import { useFreshMongoDatabases } from '../keys/mongo-databases.ts';
import { describeUserStoreContract } from './user-store.cases.ts';

const freshDb = useFreshMongoDatabases('users');

describeUserStoreContract('FerretDB', async (now) => createMongoUserStore(freshDb(), { now }));

describe('user store documents on FerretDB', () => {
  it('claims the login with its own document keyed by tenant and lower-cased login', async () => {
    const db = freshDb();
    const user = await createMongoUserStore(db).create({ tenant: 'acme', login: 'Alice' });
    expect(await db.collection('user_logins').findOne({ _id: 'acme:alice' as never })).toMatchObject({
      tenant: 'acme',
      userId: user.id,
    });
    expect(await db.collection('users').findOne({ _id: `acme:${user.id}` as never })).toMatchObject({ login: 'Alice' });
  });
});
