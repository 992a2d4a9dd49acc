import { Redis } from 'ioredis';
import { MongoClient, type Db } from 'mongodb';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditChain, verifyAuditChain, type AuditChain } from '../../src/observability/audit-chain.ts';
import { AUDIT_COLLECTION, createMongoAuditEventStore, type AuditLinkDocument } from '../../src/observability/audit-events.mongo.ts';
import { createJournaledAuditSink, startAuditJournalMover, type AuditJournal } from '../../src/observability/audit-journal.ts';
import type { AuditEvent, AuditSink } from '../../src/observability/audit.ts';
import { createRedisAuditJournal } from '../../src/storage/redis/audit-journal.redis.ts';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, postToken } from '../support/oauth.ts';
import { testServers, uniqueDbName, uniqueRedisPrefix } from '../support/servers.ts';

/*
 * The audit journal on Redis in front of the hash chain on FerretDB: the token endpoints'
 * events wait in a Redis stream and are moved into the chain off the request path. Nothing is
 * lost on the way: events whose append failed stay and are moved later, a dead node's are
 * claimed by another, and a journal that cannot be reached sends events straight to the chain.
 */

const event = (tenant: string, n: number): AuditEvent => ({ type: 'token_issued', tenant, outcome: 'success', n });

/** The events of a tenant's chain, in order. */
async function chained(db: Db, tenant: string): Promise<Array<Record<string, unknown>>> {
  const links = await db.collection<AuditLinkDocument>(AUDIT_COLLECTION).find({ tenant }).sort({ seq: 1 }).toArray();
  return links.flatMap((link) => link.events);
}

/** Log lines written at warn and above, parsed. */
function capturingLog(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: pino({ level: 'warn' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>); } }) };
}

describe('the audit journal (Redis) and its mover into the chain (FerretDB)', () => {
  let redis: Redis;
  let mongo: MongoClient;
  let db: Db;
  const prefix = uniqueRedisPrefix('audit_journal');
  const streamKey = `${prefix}:audit-journal`;
  let journal: AuditJournal;

  beforeAll(async () => {
    redis = new Redis(testServers().redisUrl);
    mongo = new MongoClient(testServers().mongoUrl);
    await mongo.connect();
    db = mongo.db(uniqueDbName('audit_journal'));
    journal = createRedisAuditJournal(redis, prefix);
  });
  afterAll(async () => {
    await db?.dropDatabase().catch(() => undefined);
    await mongo?.close();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis?.disconnect();
  });

  it('moves journaled events into the chain in few links, each marked with its journal id, and forgets them', async () => {
    const chain = createAuditChain(createMongoAuditEventStore(db));
    const ids = await Promise.all(Array.from({ length: 1_200 }, (_, n) => journal.add(event('moved', n))));
    expect(await redis.xlen(streamKey)).toBe(1_200);
    expect(await journal.backlog()).toBe(1_200);
    const mover = startAuditJournalMover(journal, chain, pino({ level: 'silent' }), { consumer: 'node-a', idleMs: 20 });
    try {
      while ((await mover.moveOnce()) > 0);
      await chain.drain();
    } finally {
      await mover.stop();
    }
    const events = await chained(db, 'moved');
    expect(events.map((e) => e.n)).toEqual(Array.from({ length: 1_200 }, (_, n) => n));
    expect(events.map((e) => e.journalId)).toEqual(ids);
    const verified = await verifyAuditChain(db, 'moved');
    expect(verified).toMatchObject({ ok: true, count: 1_200 });
    // Group commit of a batch: links of up to 500 events, not one per event.
    expect(verified.links).toBeLessThanOrEqual(6);
    expect(await redis.xlen(streamKey)).toBe(0);
    expect(await journal.backlog()).toBe(0);
  });

  it('keeps events whose append failed and moves them once the chain can be written again', async () => {
    const real = createAuditChain(createMongoAuditEventStore(db));
    let down = true;
    const chain: AuditChain = {
      append: (e) => (down ? Promise.reject(Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' })) : real.append(e)),
      drain: () => real.drain(),
    };
    await Promise.all([1, 2, 3].map((n) => journal.add(event('outage', n))));
    const { log, lines } = capturingLog();
    const mover = startAuditJournalMover(journal, chain, log, { consumer: 'node-b', idleMs: 20, retryMs: 20 });
    try {
      await expect(mover.moveOnce()).rejects.toThrow('connection refused');
      expect(await redis.xlen(streamKey)).toBe(3);
      expect(await chained(db, 'outage')).toEqual([]);
      down = false;
      while ((await mover.moveOnce()) > 0);
      await real.drain();
    } finally {
      await mover.stop();
    }
    expect((await chained(db, 'outage')).map((e) => e.n)).toEqual([1, 2, 3]);
    expect(await redis.xlen(streamKey)).toBe(0);
    expect(lines.some((line) => String(line.msg).includes('moving events into the chain failed'))).toBe(true);
  });

  it('moves the entries a dead node took and never acknowledged, once they have been idle', async () => {
    const chain = createAuditChain(createMongoAuditEventStore(db));
    await Promise.all([1, 2].map((n) => journal.add(event('abandoned', n))));
    // Node "dead" takes them and dies before its link is stored.
    expect(await journal.take('dead', 10, false)).toHaveLength(2);
    const mover = startAuditJournalMover(journal, chain, pino({ level: 'silent' }), { consumer: 'node-c', idleMs: 20, claimAfterMs: 200, claimEveryMs: 0 });
    try {
      // Not yet idle long enough: nothing new to move, and the dead node's entries are still its own.
      expect(await mover.moveOnce()).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      while ((await mover.moveOnce()) > 0);
      await chain.drain();
    } finally {
      await mover.stop();
    }
    expect((await chained(db, 'abandoned')).map((e) => e.n)).toEqual([1, 2]);
    expect(await redis.xlen(streamKey)).toBe(0);
  });

  it('drops an entry that is not an event, with an error in the log, and moves the others', async () => {
    const chain = createAuditChain(createMongoAuditEventStore(db));
    const bad = await redis.xadd(streamKey, '*', 'e', '{"type":"token_issued"');
    await journal.add(event('poisoned', 1));
    const { log, lines } = capturingLog();
    const mover = startAuditJournalMover(journal, chain, log, { consumer: 'node-d', idleMs: 20 });
    try {
      while ((await mover.moveOnce()) > 0);
      await chain.drain();
    } finally {
      await mover.stop();
    }
    expect((await chained(db, 'poisoned')).map((e) => e.n)).toEqual([1]);
    expect(await redis.xlen(streamKey)).toBe(0);
    expect(lines).toContainEqual(expect.objectContaining({ journalId: bad, msg: expect.stringContaining('not an event') }));
  });

  it('sends events straight to the chain while the journal cannot be reached, and other events always', async () => {
    const direct: AuditEvent[] = [];
    const directSink: AuditSink = { record: async (e) => { direct.push(e); } };
    let adds = 0;
    let reachable = false;
    const flaky: AuditJournal = {
      ...journal,
      add: async (e) => {
        adds += 1;
        if (!reachable) throw new Error('Command timed out');
        return journal.add(e);
      },
    };
    let clock = 1_000;
    const { log, lines } = capturingLog();
    const sink = createJournaledAuditSink(flaky, directSink, log, { bypassMs: 5_000, now: () => clock });
    await sink.record({ type: 'sign_in', tenant: 'direct', outcome: 'success' });
    expect(adds).toBe(0);
    await sink.record(event('direct', 1));
    await sink.record(event('direct', 2));
    // One try, then the journal is left alone for bypassMs.
    expect(adds).toBe(1);
    expect(direct.map((e) => e.type === 'sign_in' ? 'sign_in' : e.n)).toEqual(['sign_in', 1, 2]);
    expect(lines.filter((line) => String(line.msg).includes('audit journal unreachable'))).toHaveLength(1);
    reachable = true;
    clock += 5_000;
    await sink.record(event('direct', 3));
    expect(adds).toBe(2);
    expect(direct).toHaveLength(3);
    const stream = await redis.xrange(streamKey, '-', '+');
    expect(stream.map(([, fields]) => JSON.parse(fields[1] ?? '{}') as AuditEvent)).toEqual([event('direct', 3)]);
    await redis.del(streamKey);
  });

  it('does not hold a request longer than maxWaitMs when the journal stops answering', async () => {
    const direct: AuditEvent[] = [];
    let adds = 0;
    const stalled: AuditJournal = { ...journal, add: () => { adds += 1; return new Promise<string>(() => {}); } };
    const sink = createJournaledAuditSink(stalled, { record: async (e) => { direct.push(e); } }, pino({ level: 'silent' }), { maxWaitMs: 50 });
    // Both arrive while the journal hangs: each waits at most maxWaitMs, then goes to the chain.
    await Promise.all([sink.record(event('stalled', 1)), sink.record(event('stalled', 2))]);
    expect(direct.map((e) => e.n)).toEqual([1, 2]);
    // The next one does not try the hanging journal at all.
    await sink.record(event('stalled', 3));
    expect(adds).toBe(2);
    expect(direct.map((e) => e.n)).toEqual([1, 2, 3]);
  });
});

/** A client_credentials token of the demo tenant's service client. */
const serviceToken = (castellan: TestCastellan) => postToken(
  castellan.issuer,
  { grant_type: 'client_credentials', scope: 'notes:read', resource: 'http://localhost:3001/mcp' },
  basicAuth('demo-service', castellan.clientSecret),
);

/** The entries of a running Castellan's journal stream (0 when there is none). */
async function journalLength(castellan: TestCastellan): Promise<number> {
  const redis = new Redis(testServers().redisUrl);
  try {
    return await redis.xlen(`${castellan.env.CASTELLAN_REDIS_PREFIX ?? ''}:audit-journal`);
  } finally {
    redis.disconnect();
  }
}

describe('a running Castellan on FerretDB and Redis', () => {
  let castellan: TestCastellan;
  let mongo: MongoClient;

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'audit_journal_srv');
    mongo = new MongoClient(testServers().mongoUrl);
    await mongo.connect();
  });
  afterAll(async () => {
    await castellan?.stop();
    await mongo?.close();
  });

  it('answers a token request once its event is in the journal, and the event reaches the chain', async () => {
    const answered = await Promise.all(Array.from({ length: 20 }, () => serviceToken(castellan)));
    expect(answered.map((a) => a.status)).toEqual(Array.from({ length: 20 }, () => 200));
    await castellan.running.flushAudit();
    const db = mongo.db(castellan.env.MONGODB_DATABASE);
    const issued = (await chained(db, 'demo')).filter((e) => e.type === 'token_issued');
    expect(issued).toHaveLength(20);
    expect(issued.every((e) => typeof e.journalId === 'string' && e.client === 'demo-service')).toBe(true);
    expect(await verifyAuditChain(db, 'demo')).toMatchObject({ ok: true });
    expect(await journalLength(castellan)).toBe(0);
  });
});

describe('a running Castellan with CASTELLAN_AUDIT_JOURNAL=off', () => {
  let castellan: TestCastellan;
  let mongo: MongoClient;

  beforeAll(async () => {
    const env = await testEnvironment('mongo+redis', 'audit_nojournal');
    castellan = await startTestCastellan('mongo+redis', 'audit_nojournal', { ...env, CASTELLAN_AUDIT_JOURNAL: 'off' });
    mongo = new MongoClient(testServers().mongoUrl);
    await mongo.connect();
  });
  afterAll(async () => {
    await castellan?.stop();
    await mongo?.close();
  });

  it('stores a token answer\'s event in the chain before the answer leaves, and nothing in the journal', async () => {
    expect((await serviceToken(castellan)).status).toBe(200);
    const issued = (await chained(mongo.db(castellan.env.MONGODB_DATABASE), 'demo')).filter((e) => e.type === 'token_issued');
    expect(issued).toHaveLength(1);
    expect(issued[0]?.journalId).toBeUndefined();
    expect(await journalLength(castellan)).toBe(0);
  });
});
