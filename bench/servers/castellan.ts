import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { MongoClient } from 'mongodb';
import pino from 'pino';
import { loadSettings } from '../../src/config/settings.ts';
import type { AuditSink } from '../../src/observability/audit.ts';
import { startCastellan, type RunningCastellan } from '../../src/server.ts';
import type { ModelName } from '../../src/storage/model-store.ts';
import { indexedFields, serializePayload } from '../../src/storage/shared/records.ts';

/*
 * Castellan as the benchmark runs it: `startCastellan` with settings from the environment
 * (like `npm start`), audit events counted instead of logged (a log line per token
 * would measure the logger), and, for the bench only, a control server on
 * BENCH_CONTROL_PORT (loopback) that seeds records straight into the store and reports RSS.
 *
 * BENCH_WORKERS=N (N ≥ 1) runs N node:cluster workers sharing PORT; workers start one
 * after another so only the first seeds the demo tenant and elects keys.
 */

const TENANT = 'demo';

/**
 * Where the bench's audit events go besides the MongoDB audit chain: counted, then dropped.
 * (The memory sink of the tests keeps a copy of every event: over a run that is millions of
 * objects, whose garbage collection was charged to Castellan's token endpoint and RSS.)
 */
function countingAuditSink(): AuditSink & { count: number } {
  const sink = {
    count: 0,
    record: async () => {
      sink.count += 1;
    },
  };
  return sink;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

interface SeedRequest {
  /** Which store of the tenant: durable (MongoDB or memory) or ephemeral (Redis or memory). */
  store: 'durable' | 'ephemeral';
  model: ModelName;
  /** A stored record to copy (with fresh ids). */
  templateId: string;
  count: number;
}

/**
 * Seeds `count` copies of a stored record under new ids. On MongoDB the copies go in with
 * insertMany in the record format of src/storage/mongo/mongo-model-store.ts (one upsert per
 * record would take minutes on FerretDB); elsewhere through the store's own upsert.
 */
async function seed(running: RunningCastellan, request: SeedRequest): Promise<{ seeded: number; ms: number; sample: string[] }> {
  const started = Date.now();
  const stores = running.storage.modelStores(TENANT);
  const store = stores[request.store];
  // The template is a real token record, which lives in the durable store; copies go where asked.
  const template = await stores.durable.find(request.model, request.templateId);
  if (!template) throw new Error(`no ${request.model} ${request.templateId} to copy`);
  const ttl = 86_400;
  const sample: string[] = [];
  const every = Math.max(1, Math.floor(request.count / 500));
  let made = 0;
  const newId = () => {
    const id = randomBytes(32).toString('base64url');
    if (made % every === 0 && sample.length < 500) sample.push(id);
    made += 1;
    return id;
  };
  const copy = (id: string) => ({ ...template, jti: id, exp: Math.floor(Date.now() / 1000) + ttl });
  const mongoUrl = process.env.MONGODB_URL;
  if (request.store === 'durable' && mongoUrl) {
    const client = new MongoClient(mongoUrl);
    try {
      const collection = client.db(process.env.MONGODB_DATABASE).collection(`oidc_${request.model}`);
      const batch = 1000;
      for (let done = 0; done < request.count; done += batch) {
        const size = Math.min(batch, request.count - done);
        const expiresAt = new Date(Date.now() + ttl * 1000);
        const docs = Array.from({ length: size }, () => {
          const id = newId();
          const payload = copy(id);
          return { _id: `${TENANT}:${id}`, ns: TENANT, payload: serializePayload(payload), expiresAt, ...indexedFields(payload) };
        });
        await collection.insertMany(docs as never[], { ordered: false });
      }
    } finally {
      await client.close();
    }
  } else {
    const inFlight = 256;
    let next = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (next < request.count) {
        next += 1;
        const id = newId();
        await store.upsert(request.model, id, copy(id), ttl);
      }
    }));
  }
  return { seeded: request.count, ms: Date.now() - started, sample };
}

function startControl(running: RunningCastellan, port: number): Promise<void> {
  const server = createServer((req, res) => {
    const handle = async () => {
      if (req.method === 'GET' && req.url === '/rss') {
        globalThis.gc?.();
        return send(res, 200, { rss: process.memoryUsage.rss(), heapUsed: process.memoryUsage().heapUsed });
      }
      if (req.method === 'POST' && req.url === '/seed') {
        const body = await readJson(req);
        return send(res, 200, await seed(running, body as unknown as SeedRequest));
      }
      if (req.method === 'GET' && req.url?.startsWith('/find?')) {
        const query = new URL(req.url, 'http://x').searchParams;
        const store = running.storage.modelStores(TENANT)[query.get('store') === 'ephemeral' ? 'ephemeral' : 'durable'];
        const payload = await store.find(query.get('model') as ModelName, query.get('id') ?? '');
        return send(res, payload ? 200 : 404, payload ?? {});
      }
      send(res, 404, {});
    };
    handle().catch((err: unknown) => send(res, 500, { error: String(err) }));
  });
  server.listen(port, '127.0.0.1');
  return once(server, 'listening').then(() => undefined);
}

async function startOne(): Promise<RunningCastellan> {
  const settings = loadSettings(process.env);
  return startCastellan(settings, pino({ level: 'silent' }), { audit: countingAuditSink() });
}

async function main(): Promise<void> {
  const workers = Number(process.env.BENCH_WORKERS ?? '0');
  if (workers >= 1 && cluster.isPrimary) {
    for (let i = 0; i < workers; i += 1) {
      const worker = cluster.fork();
      await Promise.race([
        once(worker, 'listening'),
        once(worker, 'exit').then(() => {
          throw new Error('a cluster worker exited while starting');
        }),
      ]);
    }
    const stop = () => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
      setTimeout(() => process.exit(0), 3000).unref();
      cluster.disconnect(() => process.exit(0));
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.stdout.write(`cluster ready with ${workers} workers\n`);
    return;
  }
  const running = await startOne();
  const controlPort = Number(process.env.BENCH_CONTROL_PORT ?? '0');
  if (controlPort > 0 && cluster.isPrimary) await startControl(running, controlPort);
  const stop = () => {
    running.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write('castellan ready\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench castellan failed: ${String(err instanceof Error ? err.stack : err)}\n`);
  process.exit(1);
});
