import { MongoClient, type Collection, type Db } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { createAuditChain, createAuditChainSink, GENESIS_HASH, linkHash, verifyAuditChain } from '../../src/observability/audit-chain.ts';
import { auditEventId, createMongoAuditEventStore, AUDIT_COLLECTION, type AuditEventDocument } from '../../src/observability/audit-events.mongo.ts';
import type { AuditEvent } from '../../src/observability/audit.ts';
import { runCli } from '../support/cli.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { locationOf, newBrowser, postToken, runCodeFlow } from '../support/oauth.ts';
import { testServers, uniqueDbName } from '../support/servers.ts';

/*
 * The hash-chained audit log on FerretDB: links in order, two nodes appending at once
 * without a fork, an edited / deleted / truncated chain caught by verify, the CLI's
 * `audit verify`, and the events of a real sign-in flow stored without a secret.
 */

const cli = runCli;

const event = (tenant: string, n: number, extra: Record<string, unknown> = {}): AuditEvent => ({ type: 'test_event', tenant, outcome: 'success', n, ...extra });

describe('the audit chain on FerretDB', () => {
  const clients: MongoClient[] = [];
  let db: Db;
  let events: Collection<AuditEventDocument>;
  const dbName = uniqueDbName('audit_chain');

  async function openDb(): Promise<Db> {
    const client = new MongoClient(testServers().mongoUrl);
    await client.connect();
    clients.push(client);
    return client.db(dbName);
  }
  const link = (tenant: string, seq: number) => events.findOne({ _id: auditEventId(tenant, seq) });

  beforeAll(async () => {
    db = await openDb();
    events = db.collection<AuditEventDocument>(AUDIT_COLLECTION);
  });
  afterAll(async () => {
    await db?.dropDatabase().catch(() => undefined);
    for (const client of clients) await client.close();
  });

  it('appends each tenant\'s events in order as links of one hash chain', async () => {
    const chain = createAuditChain(createMongoAuditEventStore(db));
    for (let n = 1; n <= 4; n++) {
      await chain.append(event('ordered', n, { nested: { b: 2, a: [1, 'x'] } }));
      await chain.append(event('ordered-other', n));
    }
    let prev = GENESIS_HASH;
    for (let seq = 1; seq <= 4; seq++) {
      const doc = await link('ordered', seq);
      expect(doc).toMatchObject({ tenant: 'ordered', seq, prevHash: prev, event: { type: 'test_event', n: seq, nested: { b: 2, a: [1, 'x'] } } });
      expect(doc?.hash).toBe(linkHash(prev, { tenant: 'ordered', seq, at: doc?.at ?? '', event: doc?.event }));
      prev = doc?.hash ?? '';
    }
    expect(await link('ordered', 5)).toBeNull();
    expect(await verifyAuditChain(db, 'ordered')).toEqual({ ok: true, count: 4, head: prev });
    expect(await verifyAuditChain(db, 'ordered-other')).toMatchObject({ ok: true, count: 4 });
    expect(await verifyAuditChain(db, 'never-audited')).toEqual({ ok: true, count: 0, head: GENESIS_HASH });
  });

  it('makes one chain of 100, without a fork, of two nodes appending 50 events each at once', async () => {
    const nodes = [createAuditChain(createMongoAuditEventStore(await openDb())), createAuditChain(createMongoAuditEventStore(await openDb()))];
    await Promise.all(nodes.flatMap((node, i) => Array.from({ length: 50 }, (_, n) => node.append(event('raced', n, { node: i })))));
    const result = await verifyAuditChain(db, 'raced');
    expect(result).toMatchObject({ ok: true, count: 100 });
    const stored = await events.find({ tenant: 'raced' }).toArray();
    expect(stored).toHaveLength(100);
    expect(new Set(stored.map((d) => `${String(d.event.node)}:${String(d.event.n)}`)).size).toBe(100);
    expect(new Set(stored.map((d) => d.prevHash)).size).toBe(100);

    // A node started later finds the head (by _id) and goes on from it.
    const restarted = createAuditChain(createMongoAuditEventStore(await openDb()));
    const next = await restarted.append(event('raced', 100, { node: 2 }));
    expect(next.seq).toBe(101);
    expect(next.prevHash).toBe(result.ok ? result.head : '');
    expect(await verifyAuditChain(db, 'raced')).toMatchObject({ ok: true, count: 101, head: next.hash });
  });

  async function chainOf(tenant: string, count: number): Promise<void> {
    const chain = createAuditChain(createMongoAuditEventStore(db));
    for (let n = 1; n <= count; n++) await chain.append(event(tenant, n));
    expect(await verifyAuditChain(db, tenant)).toMatchObject({ ok: true, count });
  }

  it('reports an edited event at its seq, and a rehashed edit at the next link', async () => {
    await chainOf('edited', 6);
    await events.updateOne({ _id: auditEventId('edited', 3) }, { $set: { 'event.outcome': 'failure' } });
    expect(await verifyAuditChain(db, 'edited')).toMatchObject({ ok: false, seq: 3, problem: 'edited', count: 2 });

    // The forger recomputes the edited link's hash: the next link's prevHash gives it away.
    const forged = await link('edited', 3);
    if (!forged) throw new Error('link 3 gone');
    await events.updateOne({ _id: forged._id }, { $set: { hash: linkHash(forged.prevHash, forged) } });
    expect(await verifyAuditChain(db, 'edited')).toMatchObject({ ok: false, seq: 4, problem: 'broken_link', count: 3 });
  });

  it('reports a deleted middle event, swapped events and a truncated tail', async () => {
    await chainOf('deleted', 6);
    await events.deleteOne({ _id: auditEventId('deleted', 4) });
    expect(await verifyAuditChain(db, 'deleted')).toMatchObject({ ok: false, seq: 4, problem: 'missing', count: 3 });

    await chainOf('swapped', 4);
    const [two, three] = [await link('swapped', 2), await link('swapped', 3)];
    if (!two || !three) throw new Error('links missing');
    await events.replaceOne({ _id: two._id }, { tenant: three.tenant, seq: three.seq, at: three.at, event: three.event, prevHash: three.prevHash, hash: three.hash });
    expect(await verifyAuditChain(db, 'swapped')).toMatchObject({ ok: false, seq: 2, problem: 'misplaced' });

    await chainOf('truncated', 5);
    const anchor = (await link('truncated', 5))?.hash ?? '';
    expect(await verifyAuditChain(db, 'truncated', { anchor })).toEqual({ ok: true, count: 5, head: anchor });
    await events.deleteOne({ _id: auditEventId('truncated', 5) });
    expect(await verifyAuditChain(db, 'truncated')).toMatchObject({ ok: false, seq: 5, problem: 'truncated', count: 4 });
    // With the head hint deleted too, only the head recorded elsewhere shows the truncation.
    await db.collection(AUDIT_COLLECTION).deleteOne({ _id: 'truncated:head' as never });
    expect(await verifyAuditChain(db, 'truncated')).toMatchObject({ ok: true, count: 4 });
    expect(await verifyAuditChain(db, 'truncated', { anchor })).toMatchObject({ ok: false, seq: 5, problem: 'truncated', count: 4 });
  });
});

describe('the audit chain sink', () => {
  it('logs a failed append at error level and lets the request go on (fails open)', async () => {
    const failing = createMongoAuditEventStore({ collection: () => ({ insertOne: () => Promise.reject(new Error('store down')), findOne: () => Promise.resolve(null) }) } as unknown as Db);
    const errors: unknown[] = [];
    const log = pino({ level: 'error' }, { write: (line: string) => { errors.push(JSON.parse(line)); } });
    await expect(createAuditChainSink(createAuditChain(failing), log).record(event('down', 1))).resolves.toBeUndefined();
    expect(errors).toEqual([expect.objectContaining({ msg: expect.stringContaining('audit chain append failed'), auditType: 'test_event', tenant: 'down' })]);
  });
});

describe('audit events of a running Castellan on FerretDB', () => {
  let castellan: TestCastellan;
  let client: MongoClient;
  let events: Collection<AuditEventDocument>;
  const REDIRECT = 'http://127.0.0.1:53920/callback';
  const WRONG_PASSWORD = 'not-the-password-9f3c1a';

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo', 'audit_chain_flow');
    client = new MongoClient(testServers().mongoUrl);
    await client.connect();
    events = client.db(castellan.env.MONGODB_DATABASE).collection<AuditEventDocument>(AUDIT_COLLECTION);
  });
  afterAll(async () => {
    await castellan?.stop();
    await client?.close();
  });

  /** One failed password sign-in (its event is recorded before the page answers). */
  async function failSignIn(): Promise<void> {
    const browser = newBrowser();
    let url = `${castellan.issuer}/auth?${new URLSearchParams({
      client_id: 'demo-agent', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })}`;
    let response = await browser.get(url);
    while (response.status >= 300 && response.status < 400) {
      url = locationOf(response, url);
      response = await browser.get(url);
    }
    expect(await response.text()).toContain('name="password"');
    const failed = await browser.postForm(`${new URL(url).origin}${new URL(url).pathname}/login`, { login: 'demo', password: WRONG_PASSWORD });
    expect(failed.status).toBeLessThan(500);
  }

  it('chains every event it records, none carrying a password, code or token, and the CLI verifies the chain', async () => {
    await failSignIn();
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid offline_access',
      login: 'demo', password: castellan.userPassword, extra: { prompt: 'consent' },
    });
    const tokens = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', client_id: 'demo-agent', code: flow.code, redirect_uri: REDIRECT, code_verifier: flow.verifier,
    });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    // A last awaited event: appends of one tenant run in order, so every earlier one is stored now.
    await failSignIn();

    const stored = await events.find({ tenant: 'demo' }).sort({ seq: 1 }).toArray();
    const types = stored.map((d) => `${String(d.event.type)}:${String(d.event.outcome)}`);
    expect(types).toEqual(['sign_in:failure', 'sign_in:success', 'consent_given:success', 'sign_in:failure']);
    expect(stored.map((d) => d.event)).toEqual(castellan.audit.filter((e) => e.tenant === 'demo').map((e) => JSON.parse(JSON.stringify(e)) as unknown));

    const text = JSON.stringify(stored);
    const secrets = [castellan.userPassword, WRONG_PASSWORD, castellan.clientSecret, flow.code, flow.verifier,
      tokens.body.access_token, tokens.body.refresh_token, tokens.body.id_token];
    for (const secret of secrets) {
      expect(typeof secret === 'string' && secret.length > 8, 'a secret of the flow').toBe(true);
      expect(text).not.toContain(String(secret));
    }

    const ok = await cli(castellan.env, ['audit', 'verify', 'demo']);
    expect(ok.code, ok.stderr).toBe(0);
    const head = stored.at(-1)?.hash ?? '';
    expect(ok.stdout.trim()).toBe(`ok: ${stored.length} events, head ${head}`);
    const anchored = await cli(castellan.env, ['audit', 'verify', 'demo', '--head', head]);
    expect(anchored.code, anchored.stderr).toBe(0);
    const elsewhere = await cli(castellan.env, ['audit', 'verify', 'demo', '--head', 'f'.repeat(64)]);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stdout).toContain('(truncated)');
    const badHead = await cli(castellan.env, ['audit', 'verify', 'demo', '--head', 'not-a-hash']);
    expect(badHead.code).toBe(2);
    const unknown = await cli(castellan.env, ['audit', 'verify', 'nobody']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown tenant');

    await events.updateOne({ _id: auditEventId('demo', 2) }, { $set: { 'event.userId': 'someone-else' } });
    const broken = await cli(castellan.env, ['audit', 'verify', 'demo']);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain('broken at seq 2 (edited)');
  });
});
