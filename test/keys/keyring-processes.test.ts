import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createKeyring } from '../../src/keys/keyring.ts';
import { createLocalKeyWrapper, generateKeyEncryptionKey } from '../../src/keys/kms.ts';
import { createMongoSigningKeyStore } from '../../src/keys/signing-key-store.mongo.ts';
import { testServers, uniqueDbName } from '../support/servers.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/ensure-active-keys.ts', import.meta.url));

interface Report {
  kids: Record<string, string>;
  elections: { won: number; lost: number };
}

interface Node {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: AsyncIterator<string>;
  readonly stderr: () => string;
}

const children: ChildProcessWithoutNullStreams[] = [];
let client: MongoClient;

beforeAll(async () => {
  client = await new MongoClient(testServers().mongoUrl).connect();
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await client?.close();
});

function startNode(dbName: string, kek: string): Node {
  // process.execPath is the pinned Node 24 that runs vitest; it strips the fixture's types.
  const child = spawn(process.execPath, [FIXTURE, testServers().mongoUrl, dbName, 'acme'], {
    env: { ...process.env, CASTELLAN_TEST_KEK: kek },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  return { child, lines: createInterface({ input: child.stdout })[Symbol.asyncIterator](), stderr: () => stderr };
}

async function nextLine(node: Node): Promise<string> {
  const { value, done } = await node.lines.next();
  if (done) throw new Error(`node exited early (code ${node.child.exitCode}): ${node.stderr()}`);
  return value;
}

describe('signing key election across OS processes', () => {
  it('elects one active key per alg when two processes race on an empty FerretDB database', async () => {
    const dbName = uniqueDbName('keyring_procs');
    const kek = generateKeyEncryptionKey();
    const nodes = [startNode(dbName, kek), startNode(dbName, kek)];
    try {
      expect(await Promise.all(nodes.map(nextLine))).toEqual(['ready', 'ready']);
      for (const node of nodes) node.child.stdin.end('go\n');
      const outputs = (await Promise.all(nodes.map(nextLine))).map((line) => JSON.parse(line) as Report);
      const reports = outputs.map((o) => o.kids);
      const exits = await Promise.all(nodes.map((n) => new Promise((resolve) => {
        if (n.child.exitCode !== null) resolve(n.child.exitCode);
        else n.child.once('exit', resolve);
      })));
      expect(exits).toEqual([0, 0]);

      expect(Object.keys(reports[0]!).sort()).toEqual(['ES256', 'EdDSA', 'RS256']);
      expect(reports[1]).toEqual(reports[0]);
      // Exactly one winning insert per alg across both processes.
      expect(outputs[0]!.elections.won + outputs[1]!.elections.won).toBe(3);

      const db = client.db(dbName);
      const store = createMongoSigningKeyStore(db);
      const keyring = createKeyring({ store, wrapper: createLocalKeyWrapper(kek) });
      const summaries = await keyring.describeKeys('acme', { retentionSeconds: 3600 });
      const active = summaries.filter((s) => s.state === 'active');
      expect(Object.fromEntries(active.map((s) => [s.alg, s.kid]))).toEqual(reports[0]);
      for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
        expect((await store.listActivations('acme', alg)).map((a) => a.generation)).toEqual([1]);
      }
      const { jwks } = await keyring.loadSigningKeys('acme', { retentionSeconds: 3600 });
      expect(jwks.keys.filter((k) => k.key_ops === undefined)).toHaveLength(3);
      await db.dropDatabase();
    } finally {
      for (const node of nodes) node.child.stdin.end();
    }
  });
});
