import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { MongoClient, type Db } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMongoModelStores, NEVER_CONSUMED } from '../../src/storage/mongo/mongo-model-store.ts';
import { testServers, uniqueDbName } from '../support/servers.ts';

const HOUR = 3600;
let client: MongoClient;
let db: Db;
let namespaces = 0;
const store = () => createMongoModelStores(db).forNamespace(`never-consumed-${(namespaces += 1)}`);

beforeAll(async () => {
  client = new MongoClient(testServers().mongoUrl);
  db = client.db(uniqueDbName('never_consumed'));
});

afterAll(async () => {
  await db.dropDatabase();
  await client.close();
});

/** Class names of oidc-provider's models that have a consume() (lib/models/*.js). */
async function consumableProviderModels(): Promise<string[]> {
  const require = createRequire(import.meta.url);
  const modelsDir = join(dirname(require.resolve('oidc-provider')), 'models');
  const names: string[] = [];
  for (const file of (await readdir(modelsDir)).filter((name) => name.endsWith('.js'))) {
    const source = await readFile(join(modelsDir, file), 'utf8');
    if (!/async consume\(/u.test(source)) continue;
    const name = /class (\w+) extends/u.exec(source)?.[1];
    if (name !== undefined) names.push(name);
  }
  return names;
}

describe('MongoDB store: models that are never consumed skip the consumptions collection', () => {
  it('none of them is consumed by oidc-provider or by Castellan', async () => {
    const consumable = await consumableProviderModels();
    expect(consumable).toEqual(expect.arrayContaining(['AuthorizationCode', 'RefreshToken', 'DeviceCode']));
    // Castellan's own consume() calls: ReplayDetection (oidc-adapter.ts), Interaction (upstream-attempts.ts).
    for (const model of [...consumable, 'ReplayDetection', 'Interaction']) expect(NEVER_CONSUMED.has(model as never)).toBe(false);
    expect(NEVER_CONSUMED.has('AccessToken')).toBe(true);
    expect(NEVER_CONSUMED.has('ClientCredentials')).toBe(true);
  });

  it('consume() refuses them and writes no consumption record', async () => {
    const s = store();
    await s.upsert('AccessToken', 'at-1', { jti: 'at-1', kind: 'AccessToken' }, HOUR);
    await expect(s.consume('AccessToken', 'at-1')).rejects.toThrow(/never consumed/u);
    expect(await db.collection('oidc_consumptions').countDocuments({ _id: { $regex: '^AccessToken:' } } as never)).toBe(0);
    expect(await s.find('AccessToken', 'at-1')).toMatchObject({ jti: 'at-1' });
    await s.destroy('AccessToken', 'at-1');
    expect(await s.find('AccessToken', 'at-1')).toBeUndefined();
  });

  it('a consumable model still loses its consumption on destroy', async () => {
    const s = store();
    await s.upsert('RefreshToken', 'rt-1', { jti: 'rt-1', kind: 'RefreshToken' }, HOUR);
    expect(await s.consume('RefreshToken', 'rt-1')).toBe(true);
    await s.destroy('RefreshToken', 'rt-1');
    await s.upsert('RefreshToken', 'rt-1', { jti: 'rt-1', kind: 'RefreshToken' }, HOUR);
    expect((await s.find('RefreshToken', 'rt-1'))?.consumed).toBeUndefined();
    expect(await s.consume('RefreshToken', 'rt-1')).toBe(true);
  });
});
