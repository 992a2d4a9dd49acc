import { MongoClient, type Collection, type Db } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { createAuditChain, createAuditChainSink, GENESIS_HASH, linkHash, verifyAuditChain } from '../../src/observability/audit-chain.ts';
import { auditEventId, createMongoAuditEventStore, AUDIT_COLLECTION, type AuditLinkDocument } from '../../src/observability/audit-events.mongo.ts';
import type { AuditEvent } from '../../src/observability/audit.ts';
import { runCli } from '../support/cli.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { codeRedemption, locationOf, newBrowser, postToken, runCodeFlow } from '../support/oauth.ts';
import { testServers, uniqueDbName } from '../support/servers.ts';

/*
 * The hash-chained audit log on FerretDB: links in order, group commit (many events in one
 * link) with two nodes appending at once without a fork, an edited / deleted / truncated
 * chain caught by verify, the operator's query over links, the CLI's `audit verify`, and the
 * events of a real sign-in flow stored without a secret.
 */

const cli = runCli;

const event = (tenant: string, n: number, extra: Record<string, unknown> = {}): AuditEvent => ({ type: 'test_event', tenant, outcome: 'success', n, ...extra });

describe('the audit chain on FerretDB', () => {
  const clients: MongoClient[] = [];
  let db: Db;
  let events: Collection<AuditLinkDocument>;
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
    events = db.collection<AuditLinkDocument>(AUDIT_COLLECTION);
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
    // Each append awaited before the next: nothing queued behind it, one event per link.
    for (let seq = 1; seq <= 4; seq++) {
      const doc = await link('ordered', seq);
      expect(doc).toMatchObject({ tenant: 'ordered', seq, prevHash: prev, events: [{ type: 'test_event', n: seq, nested: { b: 2, a: [1, 'x'] } }] });
      expect(doc?.hash).toBe(linkHash(prev, { tenant: 'ordered', seq, at: doc?.at ?? '', events: doc?.events }));
      prev = doc?.hash ?? '';
    }
    expect(await link('ordered', 5)).toBeNull();
    expect(await verifyAuditChain(db, 'ordered')).toEqual({ ok: true, count: 4, links: 4, head: prev });
    expect(await verifyAuditChain(db, 'ordered-other')).toMatchObject({ ok: true, count: 4 });
    expect(await verifyAuditChain(db, 'never-audited')).toEqual({ ok: true, count: 0, links: 0, head: GENESIS_HASH });
  });

  const linksOf = (tenant: string) => events.find({ tenant }).sort({ seq: 1 }).toArray();

  it('group commit: 200 events of one tenant recorded at once on two nodes go into fewer links of one chain, each event once', async () => {
    const nodes = [createAuditChain(createMongoAuditEventStore(await openDb())), createAuditChain(createMongoAuditEventStore(await openDb()))];
    const appended = await Promise.all(nodes.flatMap((node, i) => Array.from({ length: 100 }, (_, n) => node.append(event('raced', n, { node: i })))));
    const result = await verifyAuditChain(db, 'raced');
    expect(result).toMatchObject({ ok: true, count: 200 });
    const stored = await linksOf('raced');
    expect(result.links).toBe(stored.length);
    expect(stored.length).toBeLessThan(200);
    expect(stored.some((d) => d.events.length > 1)).toBe(true);
    const all = stored.flatMap((d) => d.events.map((e) => `${String(e.node)}:${String(e.n)}`));
    expect(all).toHaveLength(200);
    expect(new Set(all).size).toBe(200);
    // One node's events keep the order it recorded them in.
    for (const node of [0, 1]) {
      const order = stored.flatMap((d) => d.events.filter((e) => e.node === node).map((e) => Number(e.n)));
      expect(order).toEqual(Array.from({ length: 100 }, (_, n) => n));
    }
    // Each append resolved to the stored link that holds its event.
    for (const [i, written] of appended.entries()) {
      const [node, n] = [Math.floor(i / 100), i % 100];
      const holder = stored.find((d) => d.seq === written.seq);
      expect(holder?.hash).toBe(written.hash);
      expect(holder?.events.some((e) => e.node === node && e.n === n)).toBe(true);
    }

    // A node started later finds the head (by _id) and goes on from it.
    const restarted = createAuditChain(createMongoAuditEventStore(await openDb()));
    const next = await restarted.append(event('raced', 100, { node: 2 }));
    expect(next.seq).toBe(stored.length + 1);
    expect(next.prevHash).toBe(result.ok ? result.head : '');
    expect(await verifyAuditChain(db, 'raced')).toMatchObject({ ok: true, count: 201, links: stored.length + 1, head: next.hash });
  });

  it('bounds a link\'s events, and catches an event edited or removed inside a multi-event link, and a deleted link', async () => {
    const chain = createAuditChain(createMongoAuditEventStore(db), { maxEventsPerLink: 30 });
    await Promise.all(Array.from({ length: 200 }, (_, n) => chain.append(event('grouped', n, { detail: `d${n}` }))));
    await chain.drain();
    const stored = await linksOf('grouped');
    expect(stored.every((d) => d.events.length >= 1 && d.events.length <= 30)).toBe(true);
    expect(stored.flatMap((d) => d.events.map((e) => e.n))).toEqual(Array.from({ length: 200 }, (_, n) => n));
    expect(await verifyAuditChain(db, 'grouped')).toMatchObject({ ok: true, count: 200, links: stored.length });

    const multi = stored.find((d) => d.seq > 1 && d.events.length >= 3);
    if (!multi) throw new Error('no multi-event link after the first');
    const before = stored.filter((d) => d.seq < multi.seq).reduce((sum, d) => sum + d.events.length, 0);
    await events.updateOne({ _id: multi._id }, { $set: { 'events.1.detail': 'forged' } });
    expect(await verifyAuditChain(db, 'grouped')).toMatchObject({ ok: false, seq: multi.seq, problem: 'edited', count: before, links: multi.seq - 1 });
    await events.replaceOne({ _id: multi._id }, { ...multi, events: multi.events.filter((_, i) => i !== 1) });
    expect(await verifyAuditChain(db, 'grouped')).toMatchObject({ ok: false, seq: multi.seq, problem: 'edited' });
    await events.replaceOne({ _id: multi._id }, { ...multi, events: [] });
    expect(await verifyAuditChain(db, 'grouped')).toMatchObject({ ok: false, seq: multi.seq, problem: 'edited' });
    await events.replaceOne({ _id: multi._id }, multi);
    expect(await verifyAuditChain(db, 'grouped')).toMatchObject({ ok: true, count: 200 });
    await events.deleteOne({ _id: multi._id });
    expect(await verifyAuditChain(db, 'grouped')).toMatchObject({ ok: false, seq: multi.seq, problem: 'missing', count: before });
  });

  it('answers an operator\'s query with events flattened from links, filtered by type and time, paged inside a link', async () => {
    const store = createMongoAuditEventStore(db);
    const chain = createAuditChain(store);
    await Promise.all(Array.from({ length: 40 }, (_, n) => chain.append({ type: n % 4 === 0 ? 'rare' : 'common', tenant: 'queried', outcome: 'success', n })));
    const stored = await linksOf('queried');
    expect(stored.length).toBeLessThan(40);

    const rare = await store.query('queried', { types: ['rare'], limit: 100 });
    expect(rare.map((r) => r.event.n)).toEqual([0, 4, 8, 12, 16, 20, 24, 28, 32, 36]);
    for (const r of rare) {
      const holder = stored.find((d) => d.seq === r.seq);
      expect(holder?.events[r.index]).toEqual(r.event);
      expect(r).toMatchObject({ at: holder?.at, hash: holder?.hash });
    }
    // Pages of 3 events, each starting after the previous page's last (often inside one link).
    const seen: unknown[] = [];
    let after: { seq: number; index: number } | undefined;
    for (;;) {
      const page = await store.query('queried', { limit: 3, ...(after ? { after } : {}) });
      seen.push(...page.map((r) => r.event.n));
      const last = page.at(-1);
      if (page.length < 3 || !last) break;
      after = { seq: last.seq, index: last.index };
    }
    expect(seen).toEqual(Array.from({ length: 40 }, (_, n) => n));
    const both = await store.query('queried', { types: ['rare', 'common'], limit: 5, after: { seq: stored[0]?.seq ?? 0, index: 0 } });
    expect(both.map((r) => r.event.n)).toEqual([1, 2, 3, 4, 5]);
    expect(await store.query('queried', { limit: 10, from: new Date(Date.now() + 60_000).toISOString() })).toEqual([]);
    expect(await store.query('queried', { limit: 50, to: stored.at(-1)?.at ?? '' })).toHaveLength(40);
  });

  async function chainOf(tenant: string, count: number): Promise<void> {
    const chain = createAuditChain(createMongoAuditEventStore(db));
    for (let n = 1; n <= count; n++) await chain.append(event(tenant, n));
    // The head hint is written off the append path: wait for it.
    await chain.drain();
    expect(await verifyAuditChain(db, tenant)).toMatchObject({ ok: true, count, links: count });
  }

  it('reports an edited event at its seq, and a rehashed edit at the next link', async () => {
    await chainOf('edited', 6);
    await events.updateOne({ _id: auditEventId('edited', 3) }, { $set: { 'events.0.outcome': 'failure' } });
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
    await events.replaceOne({ _id: two._id }, { tenant: three.tenant, seq: three.seq, at: three.at, events: three.events, prevHash: three.prevHash, hash: three.hash });
    expect(await verifyAuditChain(db, 'swapped')).toMatchObject({ ok: false, seq: 2, problem: 'misplaced' });

    await chainOf('truncated', 5);
    const anchor = (await link('truncated', 5))?.hash ?? '';
    expect(await verifyAuditChain(db, 'truncated', { anchor })).toEqual({ ok: true, count: 5, links: 5, head: anchor });
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
  let events: Collection<AuditLinkDocument>;
  const REDIRECT = 'http://127.0.0.1:53920/callback';
  const WRONG_PASSWORD = 'not-the-password-9f3c1a';

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo', 'audit_chain_flow');
    client = new MongoClient(testServers().mongoUrl);
    await client.connect();
    events = client.db(castellan.env.MONGODB_DATABASE).collection<AuditLinkDocument>(AUDIT_COLLECTION);
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
    const tokens = await postToken(castellan.issuer, codeRedemption(flow, 'demo-agent', REDIRECT));
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    // A last awaited event: appends of one tenant run in order, so every earlier one is stored now.
    await failSignIn();

    const stored = await events.find({ tenant: 'demo' }).sort({ seq: 1 }).toArray();
    const recorded = stored.flatMap((d) => d.events);
    const types = recorded.map((e) => `${String(e.type)}:${String(e.outcome)}`);
    expect(types).toEqual(['sign_in:failure', 'sign_in:success', 'consent_given:success', 'token_issued:success', 'sign_in:failure']);
    expect(recorded).toEqual(castellan.audit.filter((e) => e.tenant === 'demo').map((e) => JSON.parse(JSON.stringify(e)) as unknown));

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
    expect(ok.stdout.trim()).toBe(`ok: ${recorded.length} events in ${stored.length} links, head ${head}`);
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

    const signedIn = stored.find((d) => d.events.some((e) => e.type === 'sign_in' && e.outcome === 'success'));
    const index = signedIn?.events.findIndex((e) => e.type === 'sign_in' && e.outcome === 'success') ?? -1;
    await events.updateOne({ _id: signedIn?._id ?? '' }, { $set: { [`events.${index}.userId`]: 'someone-else' } });
    const broken = await cli(castellan.env, ['audit', 'verify', 'demo']);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`broken at seq ${String(signedIn?.seq)} (edited)`);
  });
});
