import { basicAuth } from '../test/support/oauth.ts';
import type { BenchContext } from './lib/context.ts';
import { baselineAuth, DEMO_JWT_RESOURCE, DEMO_OPAQUE_RESOURCE } from './lib/context.ts';
import { httpTarget, interleaved, median, roundRatio, type LoadRequest, type TargetResult } from './lib/load.ts';
import { check, type Check, type Row } from './lib/results.ts';
import type { CastellanServer, CastellanStorage } from './lib/servers.ts';
import type { Scenario, ScenarioOutput } from './scenarios.ts';

/*
 * Growth: token issuance and introspection latency, and the server's RSS, as the store
 * grows. Records are copies of a real client_credentials token record, seeded straight
 * into the store through the bench control endpoint (bench/servers/castellan.ts). FerretDB
 * gets at most --ferretdb-max (default 10k; STORES.md allows up to 100k): its finds by _id
 * scan the collection, so each step of ten costs it about ten times the time per lookup,
 * and at 100k a 50-connection run leaves a backlog of many seconds. Beyond that, on the
 * production stores, the extra records go to Redis. Seeded records have no Redis read copy:
 * each sampled token's first introspection is timed apart (cold reads), and every sampled
 * token is introspected again before each timed measurement, which times steady state.
 */

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const CC_OPAQUE = new URLSearchParams({ grant_type: 'client_credentials', resource: DEMO_OPAQUE_RESOURCE, scope: 'reports:read' }).toString();

export function formatSize(n: number): string {
  if (n >= 1_000_000 && n % 1_000_000 === 0) return `${n / 1_000_000}M`;
  if (n >= 1000 && n % 1000 === 0) return `${n / 1000}k`;
  return String(n);
}

const REFERENCE = 'bare oidc-provider introspect (reference)';

/** Median over rounds of target p99 / reference p99, each taken within one round. */
function roundP99Ratio(target: TargetResult, reference: TargetResult): number {
  return median(target.rounds.flatMap((m, i) => {
    const r = reference.rounds[i];
    return r && r.p99 > 0 ? [m.p99 / r.p99] : [];
  }));
}

async function control<T>(server: CastellanServer, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${server.controlUrl}${path}`, body === undefined
    ? {}
    : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) throw new Error(`control ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

async function seed(server: CastellanServer, store: 'durable' | 'ephemeral', templateId: string, count: number): Promise<{ ms: number; sample: string[] }> {
  if (count <= 0) return { ms: 0, sample: [] };
  return control(server, '/seed', { store, model: 'ClientCredentials', templateId, count });
}

/**
 * Introspects each token once, `inFlight` at a time, and returns the latencies in ms and the
 * answers that were not an active token. The warm-up pass before each timed measurement:
 * the first read of a seeded token is cold (no Redis read copy yet; on FerretDB v1.24.2 a
 * full scan per lookup), and steady state is what the rows should time.
 */
async function introspectEach(url: string, authorization: string, tokens: readonly string[], inFlight: number): Promise<{ latencies: number[]; failed: number }> {
  const latencies: number[] = [];
  let failed = 0;
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(inFlight, tokens.length) }, async () => {
    while (next < tokens.length) {
      const token = tokens[next] ?? '';
      next += 1;
      const started = performance.now();
      try {
        const response = await fetch(url, { method: 'POST', headers: { ...FORM, authorization }, body: `token=${token}` });
        const active = response.ok && ((await response.json()) as { active?: boolean }).active === true;
        latencies.push(performance.now() - started);
        if (!active) failed += 1;
      } catch {
        failed += 1;
      }
    }
  }));
  return { latencies, failed };
}

function p99(latencies: readonly number[]): number {
  const sorted = [...latencies].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))] ?? Number.NaN;
}

/** Sampled tokens introspected at once in the cold pass (first reads), and in the re-warming ones. */
const COLD_IN_FLIGHT = 10;
const WARM_IN_FLIGHT = 20;

async function growthFor(ctx: BenchContext, storage: CastellanStorage): Promise<{ rows: Row[]; checks: Check[]; notes: string[] }> {
  const server = await ctx.ownCastellan(storage, `castellan ${storage} (growth)`);
  const rows: Row[] = [];
  const notes: string[] = [];
  const checks: Check[] = [];
  try {
    const auth = basicAuth('demo-service', server.clientSecret);
    const tokenUrl = `${server.url}/t/demo/token`;
    const first = await fetch(tokenUrl, { method: 'POST', headers: { ...FORM, authorization: auth }, body: CC_OPAQUE });
    const template = ((await first.json()) as { access_token?: string }).access_token;
    if (!template) throw new Error('no token to copy');
    const sizes = [...ctx.options.sizes].sort((a, b) => a - b);
    let durable = 0;
    let ephemeral = 0;
    const samples: string[] = [template];
    const perSize: Array<{ size: number; issue: Row; introspect: Row }> = [];
    // The reference: bare oidc-provider introspecting its own tokens, measured in the same
    // rounds as each size, so a p99 can be read relative to what the machine did meanwhile.
    const bare = await ctx.bare();
    const [bareToken] = await (async () => {
      const response = await fetch(`${bare.url}/token`, { method: 'POST', headers: { ...FORM, authorization: baselineAuth }, body: CC_OPAQUE });
      return [((await response.json()) as { access_token?: string }).access_token ?? ''];
    })();
    const reference: LoadRequest = { method: 'POST', url: `${bare.url}/token/introspection`, headers: { ...FORM, authorization: baselineAuth }, body: `token=${bareToken}` };
    const warmed = new Set<string>();
    const coldReads: string[] = [];
    for (const size of sizes) {
      const durableGoal = storage === 'production' ? Math.min(size, ctx.options.ferretdbMax) : size;
      const ephemeralGoal = storage === 'production' ? size - durableGoal : 0;
      const seededDurable = await seed(server, 'durable', template, durableGoal - durable);
      const seededEphemeral = await seed(server, 'ephemeral', template, ephemeralGoal - ephemeral);
      samples.push(...seededDurable.sample);
      durable = Math.max(durable, durableGoal);
      ephemeral = Math.max(ephemeral, ephemeralGoal);
      const where = storage === 'production'
        ? `${formatSize(durable)} in FerretDB${ephemeral ? ` + ${formatSize(ephemeral)} in Redis` : ''}`
        : `${formatSize(durable)} in memory`;
      ctx.log(`    seeded ${where} (${((seededDurable.ms + seededEphemeral.ms) / 1000).toFixed(1)} s)`);
      const introspectable = samples.filter((id) => id !== template || samples.length === 1);
      const issue: LoadRequest = { method: 'POST', url: tokenUrl, headers: { ...FORM, authorization: auth }, body: CC_OPAQUE };
      const introspect: LoadRequest = {
        method: 'POST',
        url: `${tokenUrl}/introspection`,
        headers: { ...FORM, authorization: auth },
        body: () => `token=${introspectable[Math.floor(Math.random() * introspectable.length)]}`,
      };
      const probe = await fetch(introspect.url, { method: 'POST', headers: introspect.headers ?? {}, body: `token=${introspectable[introspectable.length - 1]}` });
      const active = ((await probe.json()) as { active?: boolean }).active;
      if (active !== true) throw new Error('a seeded token does not introspect as active: the seeding format is wrong');
      // Cold pass: the first introspection of each sampled token not read before (timed
      // apart); then, before every timed measurement, one more pass over all of them, so the
      // rows time steady state (a Redis read copy lives 5 minutes; a re-read renews it).
      const fresh = introspectable.filter((token) => !warmed.has(token));
      const cold = await introspectEach(introspect.url, auth, fresh, COLD_IN_FLIGHT);
      for (const token of fresh) warmed.add(token);
      coldReads.push(fresh.length
        ? `${formatSize(size)}: p99 ${p99(cold.latencies).toFixed(1)} ms over ${fresh.length} tokens${cold.failed ? ` (${cold.failed} not active)` : ''}`
        : `${formatSize(size)}: no new samples`);
      ctx.log(`    cold first reads at ${coldReads[coldReads.length - 1] ?? ''}`);
      const rewarm = async () => {
        const { failed } = await introspectEach(introspect.url, auth, introspectable, WARM_IN_FLIGHT);
        if (failed) ctx.log(`    warm-up pass: ${failed} of ${introspectable.length} sampled tokens not active`);
      };
      const results = await interleaved([
        httpTarget(`issue @ ${formatSize(size)}`, () => issue),
        httpTarget(`introspect @ ${formatSize(size)}`, () => introspect, rewarm),
        httpTarget(REFERENCE, () => reference),
      ], { duration: ctx.options.duration, rounds: ctx.options.rounds, warmup: ctx.options.warmup, connections: ctx.options.connections, log: ctx.log });
      const { rss } = await control<{ rss: number }>(server, '/rss');
      const rssMiB = Math.round(rss / 1024 / 1024);
      const ref = results.find((r) => r.name === REFERENCE);
      const [issued, introspected] = results.filter((r) => r !== ref).map((r): Row => ({
        target: `castellan ${storage}: ${r.name} (${where})`,
        rps: r.rps, p50: r.p50, p99: r.p99, errors: r.errors, requests: r.requests, rssMiB,
        // p99 relative to the reference measured in the same rounds: background load cancels.
        ...(ref ? { baseline: `${REFERENCE} p99`, ratio: roundP99Ratio(r, ref) } : {}),
      }));
      if (issued && introspected && ref) {
        rows.push(issued, introspected, { target: `${REFERENCE} (same rounds)`, rps: ref.rps, p50: ref.p50, p99: ref.p99, errors: ref.errors, requests: ref.requests });
        perSize.push({ size, issue: issued, introspect: introspected });
      }
    }
    const smallest = perSize[0];
    const largest = perSize[perSize.length - 1];
    if (smallest && largest && largest !== smallest) {
      for (const kind of ['issue', 'introspect'] as const) {
        const growth = (largest[kind].ratio ?? Number.NaN) / (smallest[kind].ratio ?? Number.NaN);
        checks.push(check(
          `${storage}: ${kind} p99 from ${formatSize(smallest.size)} to ${formatSize(largest.size)} stored grows ≤ 1.3×`,
          growth, '<=', 1.3,
          (v) => `${v}× relative to the reference (raw p99 ${smallest[kind].p99} → ${largest[kind].p99} ms)`,
        ));
      }
    }
    if (coldReads.length) {
      notes.push(`${storage}: cold first reads (first introspection of each newly sampled token, ${COLD_IN_FLIGHT} in flight, not in the rows): ${coldReads.join('; ')}.`);
    }
    if (storage === 'production' && sizes.some((s) => s > ctx.options.ferretdbMax)) {
      notes.push(`Production stores: tokens live in FerretDB (durable), which is seeded to at most ${formatSize(ctx.options.ferretdbMax)} (--ferretdb-max; STORES.md: at most 100k, 1M inserts take over ten minutes there; and FerretDB v1.24.2 SQLite answers findOne/replaceOne by _id with a full collection SCAN, so introspection slows in proportion to the stored tokens); the records beyond that are seeded into Redis (copies of the token record in the ephemeral store), so the largest step shows the effect of a large Redis, not of 1M documents in FerretDB.`);
    }
    return { rows, checks, notes };
  } finally {
    await server.stop();
  }
}

export const growth: Scenario = {
  name: 'growth',
  title: 'growth: issuance and introspection with 1k … 1M stored tokens, and RSS',
  async run(ctx): Promise<ScenarioOutput> {
    const out: ScenarioOutput = {
      rows: [],
      checks: [],
      notes: ['Sizes are measured one after another on one growing server (the store only grows), so each size is measured in the same rounds as a reference (bare oidc-provider introspecting one token, its store never grows): the growth check compares p99 relative to the reference, which cancels background load; raw p99s are in the rows. Introspection picks among tokens sampled across every batch seeded into the durable store (memory, or FerretDB), and before each timed measurement every sampled token is introspected once (not timed), so the rows time steady state (production: Redis read copies), not the first, cold reads (FerretDB v1.24.2 scans the collection for each): those are in the cold-read lines. RSS is read after a forced GC.'],
    };
    for (const storage of ctx.options.storages) {
      const part = await growthFor(ctx, storage);
      out.rows.push(...part.rows);
      out.checks.push(...part.checks);
      out.notes.push(...part.notes);
    }
    return out;
  },
};

const CC_JWT = new URLSearchParams({ grant_type: 'client_credentials', resource: DEMO_JWT_RESOURCE, scope: 'notes:read' }).toString();

export const scale: Scenario = {
  name: 'scale',
  title: 'scale: node:cluster with 1 and 2 workers on the production stores',
  async run(ctx): Promise<ScenarioOutput> {
    const one = await ctx.ownCastellan('production', 'castellan cluster 1 worker', 1);
    try {
      const two = await ctx.ownCastellan('production', 'castellan cluster 2 workers', 2);
      try {
        const targets = [one, two].flatMap((server, i) => {
          const auth = basicAuth('demo-service', server.clientSecret);
          const workers = i === 0 ? '1 worker' : '2 workers';
          return [
            httpTarget(`${workers}: client_credentials JWT`, () => ({ method: 'POST', url: `${server.url}/t/demo/token`, headers: { ...FORM, authorization: auth }, body: CC_JWT })),
            httpTarget(`${workers}: JWKS GET`, () => ({ method: 'GET', url: `${server.url}/t/demo/jwks` })),
          ];
        });
        const results = await interleaved(targets, { duration: ctx.options.duration, rounds: ctx.options.rounds, warmup: ctx.options.warmup, connections: ctx.options.connections, log: ctx.log });
        const rows: Row[] = results.map((r) => ({ target: r.name, rps: r.rps, p50: r.p50, p99: r.p99, errors: r.errors, requests: r.requests }));
        const checks: Check[] = [];
        for (const what of ['client_credentials JWT', 'JWKS GET']) {
          const a = results.find((r) => r.name === `1 worker: ${what}`);
          const b = results.find((r) => r.name === `2 workers: ${what}`);
          if (!a || !b) continue;
          const speedup = roundRatio(b, a);
          const row = rows.find((r) => r.target === b.name);
          if (row) Object.assign(row, { baseline: a.name, ratio: speedup });
          if (what === 'client_credentials JWT') checks.push(check('2 workers ≥ 1.8× one worker (client_credentials JWT, production stores)', speedup, '>=', 1.8, (v) => `${v}×`));
        }
        return {
          rows,
          checks,
          notes: [`The machine has ${(await import('node:os')).availableParallelism()} cores, shared by the load generator (autocannon, one core), FerretDB, Redis, the cluster primary and its workers: a 1.8× speed-up needs two free cores for Castellan alone.`],
        };
      } finally {
        await two.stop();
      }
    } finally {
      await one.stop();
    }
  },
};
