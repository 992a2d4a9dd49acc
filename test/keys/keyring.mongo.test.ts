import { createMongoSigningKeyStore } from '../../src/keys/signing-key-store.mongo.ts';
import { describeKeyringContract } from './keyring.cases.ts';
import { useFreshMongoDatabases } from './mongo-databases.ts';

const freshDb = useFreshMongoDatabases('keyring');

describeKeyringContract('FerretDB', async () => {
  const db = freshDb();
  const store = createMongoSigningKeyStore(db);
  await store.ensureIndexes();
  return {
    store,
    rawKeyDocument: (kid) => db.collection<{ _id: string }>('signing_keys').findOne({ _id: kid }),
  };
});
