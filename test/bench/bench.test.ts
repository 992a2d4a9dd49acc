import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCli, parseSize, runBench } from '../../bench/run.ts';
import type { RunResults } from '../../bench/lib/report.ts';

/*
 * Proves the benchmark harness works: one scenario in quick mode on the memory store, for
 * about a second. Asserts structure only (the fields exist, nothing errored); the bench
 * itself never fails on timing, and neither does this test.
 */

describe('benchmark harness', () => {
  let out: string | undefined;
  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('parses scenario names, sizes and quick mode', () => {
    expect(parseSize('1k')).toBe(1000);
    expect(parseSize('100k')).toBe(100_000);
    expect(parseSize('1M')).toBe(1_000_000);
    const cli = parseCli(['cc-jwt', '--quick', '--sizes', '1k,100k', '--stores', 'memory', '--ferretdb-max', '100k'], {});
    expect(cli).toMatchObject({ scenarios: ['cc-jwt'], quick: true, sizes: [1000, 100_000], storages: ['memory'], ferretdbMax: 100_000 });
    expect(() => parseCli(['no-such-scenario'], {})).toThrow(/unknown scenario/);
    expect(parseCli([], { BENCH_DURATION: '7' }).duration).toBe(7);
  });

  it('runs one scenario against its baseline and writes results with every field', async () => {
    out = await mkdtemp(join(tmpdir(), 'castellan-bench-test-'));
    const cli = parseCli(['cc-jwt', '--quick', '--stores', 'memory', '--duration', '0.5', '--warmup', '0.2', '--out', out, '--no-readme'], {});
    const { files } = await runBench(cli, () => {});
    const results = JSON.parse(await readFile(files.json, 'utf8')) as RunResults;
    expect(results.info).toMatchObject({ quick: true, scenarios: ['cc-jwt'] });
    const [scenario] = results.scenarios;
    expect(scenario?.failed).toBeUndefined();
    expect(scenario?.rows.map((r) => r.target)).toEqual(['castellan memory', 'bare oidc-provider', 'bare oidc-provider inside Koa (mount cost)']);
    for (const row of scenario?.rows ?? []) {
      expect(row).toEqual(expect.objectContaining({ rps: expect.any(Number), p50: expect.any(Number), p99: expect.any(Number), errors: 0 }));
      expect(row.requests).toBeGreaterThan(0);
    }
    expect(scenario?.rows[0]).toMatchObject({ baseline: 'bare oidc-provider', ratio: expect.any(Number) });
    // Server CPU per request is read from /proc for every HTTP target (Linux).
    expect(scenario?.rows[0]).toMatchObject({ cpuUs: expect.any(Number), cpuRatio: expect.any(Number) });
    expect(scenario?.checks).toContainEqual(expect.objectContaining({ target: expect.stringContaining('ES256'), ok: true }));
    expect(await readFile(files.md, 'utf8')).toContain('| castellan memory |');
  }, 60_000);

  it('measures live and repeated revocations apart, each against its own baseline', async () => {
    out ??= await mkdtemp(join(tmpdir(), 'castellan-bench-test-'));
    const cli = parseCli(['revocation', '--quick', '--stores', 'memory', '--duration', '0.5', '--warmup', '0.2', '--out', out, '--no-readme'], {});
    const { results } = await runBench(cli, () => {});
    const [scenario] = results.scenarios;
    expect(scenario?.failed).toBeUndefined();
    expect(scenario?.rows.map((r) => [r.target, r.baseline])).toEqual([
      ['castellan memory: live', 'bare oidc-provider: live'],
      ['bare oidc-provider: live', undefined],
      ['castellan memory: repeated', 'bare oidc-provider: repeated'],
      ['bare oidc-provider: repeated', undefined],
    ]);
    for (const row of scenario?.rows ?? []) expect(row).toMatchObject({ errors: 0, requests: expect.any(Number) });
    // One line on the method, then one summary line per target; no live request went past its pool.
    expect(scenario?.notes).toHaveLength(3);
    for (const name of ['castellan memory', 'bare oidc-provider']) {
      const line = scenario?.notes.find((n) => n.startsWith(`${name}: live pools of`));
      expect(line).toBeDefined();
      expect(line).not.toContain('past the pool');
    }
  }, 60_000);
});
