import { MongoClient, type Db } from 'mongodb';
import { afterAll, beforeAll } from 'vitest';

import { createMongoSigningKeyStore } from '../../src/keys/signing-key-store.mongo.ts';
import { testServers, uniqueDbName } from '../support/servers.ts';
import { describeKeyringContract } from './keyring.cases.ts';

let client: MongoClient;
const dbs: Db[] = [];

beforeAll(async () => {
  client = await new MongoClient(testServers().mongoUrl).connect();
});

afterAll(async () => {
  await Promise.allSettled(dbs.map((db) => db.dropDatabase()));
  await client?.close();
});

describeKeyringContract('FerretDB', async () => {
  const db = client.db(uniqueDbName('keyring'));
  dbs.push(db);
  const store = createMongoSigningKeyStore(db);
  await store.ensureIndexes();
  return {
    store,
    rawKeyDocument: (kid) => db.collection('signing_keys').findOne({ _id: kid as never }),
  };
});
