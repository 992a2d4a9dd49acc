import { MongoClient, type Db } from 'mongodb';
import { afterAll, beforeAll } from 'vitest';

import { testServers, uniqueDbName } from '../support/servers.ts';

/**
 * One FerretDB connection per test file and a fresh, empty database per call of the
 * returned function; all of them are dropped after the file. (Used by the key, tenant and
 * user store tests; a candidate for test/support.)
 */
export function useFreshMongoDatabases(prefix: string): () => Db {
  let client: MongoClient | undefined;
  const dbs: Db[] = [];
  beforeAll(async () => {
    client = await new MongoClient(testServers().mongoUrl).connect();
  });
  afterAll(async () => {
    await Promise.allSettled(dbs.map((db) => db.dropDatabase()));
    await client?.close();
  });
  return () => {
    if (client === undefined) throw new Error('useFreshMongoDatabases: called before beforeAll');
    const db = client.db(uniqueDbName(prefix));
    dbs.push(db);
    return db;
  };
}
