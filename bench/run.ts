import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BenchContext, type RunOptions } from './lib/context.ts';
import { renderSummary, updateReadme, writeResults, type RunResults } from './lib/report.ts';
import type { ScenarioResult } from './lib/results.ts';
import { stopAll } from './lib/servers.ts';
import { growth, scale } from './growth.ts';
import { SCENARIOS, type Scenario } from './scenarios.ts';

/*
 * npm run bench                       every scenario
 * npm run bench -- cc-jwt introspection   only these
 * npm run bench -- --quick            short measurements (harness check)
 * options: --duration S --rounds N --warmup S --connections N --sizes 1k,100k,1M --ferretdb-max 10k
 *          --stores memory|production|both --profile --out DIR --readme / --no-readme
 *          --compare DIR   also measure the Castellan checkout in DIR (before/after in one run)
 * env:     BENCH_DURATION, BENCH_ROUNDS (same as the flags)
 *
 * Everything started is stopped at the end, on failure and on SIGINT/SIGTERM.
 */

const REPO = join(import.meta.dirname, '..');
export const ALL_SCENARIOS: readonly Scenario[] = [...SCENARIOS, growth, scale];

export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(text.trim());
  if (!match) throw new Error(`not a size: ${text} (use e.g. 1k, 100k, 1M)`);
  const factor = { '': 1, k: 1000, K: 1000, m: 1_000_000, M: 1_000_000 }[match[2] ?? ''] ?? 1;
  return Math.round(Number(match[1]) * factor);
}

export interface CliOptions extends RunOptions {
  scenarios: string[];
  quick: boolean;
  outDir: string;
  readme: boolean | undefined;
}

export function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliOptions {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      sizes: { type: 'string' },
      'ferretdb-max': { type: 'string' },
      stores: { type: 'string' },
      profile: { type: 'boolean', default: false },
      compare: { type: 'string' },
      out: { type: 'string' },
      readme: { type: 'boolean' },
      'no-readme': { type: 'boolean' },
    },
  });
  const quick = values.quick === true;
  const num = (flag: string | undefined, envName: string, fallback: number): number => {
    const text = flag ?? env[envName];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${envName} / flag must be a positive number, not ${text}`);
    return value;
  };
  const known = new Set(ALL_SCENARIOS.map((s) => s.name));
  const unknown = positionals.filter((p) => p !== 'all' && !known.has(p));
  if (unknown.length) throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${[...known].join(', ')}`);
  const stores = values.stores ?? 'both';
  if (!['memory', 'production', 'both'].includes(stores)) throw new Error('--stores is memory, production or both');
  const outDir = values.out ?? join(REPO, 'bench', 'results');
  return {
    scenarios: positionals.filter((p) => p !== 'all'),
    quick,
    duration: num(values.duration, 'BENCH_DURATION', quick ? 0.5 : 2),
    rounds: Math.round(num(values.rounds, 'BENCH_ROUNDS', quick ? 1 : 3)),
    warmup: num(values.warmup, 'BENCH_WARMUP', quick ? 0.2 : 0.5),
    connections: Math.round(num(values.connections, 'BENCH_CONNECTIONS', 50)),
    storages: stores === 'both' ? ['memory', 'production'] : [stores as 'memory' | 'production'],
    sizes: (values.sizes ?? (quick ? '1k,10k' : '1k,100k,1M')).split(',').map(parseSize),
    ferretdbMax: parseSize(values['ferretdb-max'] ?? '10k'),
    profileDir: values.profile ? join(outDir, 'profiles') : undefined,
    compareDir: values.compare,
    outDir,
    readme: values['no-readme'] ? false : values.readme,
  };
}

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/** Runs the chosen scenarios; returns the results (also written to disk). Never throws for a failed scenario. */
export async function runBench(cli: CliOptions, log: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<{ results: RunResults; files: { json: string; md: string } }> {
  const chosen = cli.scenarios.length ? ALL_SCENARIOS.filter((s) => cli.scenarios.includes(s.name)) : [...ALL_SCENARIOS];
  const ctx = new BenchContext(cli, log);
  const startedAt = new Date();
  const loadBefore = loadavg()[0] ?? 0;
  const scenarios: ScenarioResult[] = [];
  try {
    for (const scenario of chosen) {
      log(`▶ ${scenario.name}: ${scenario.title}`);
      const started = performance.now();
      ctx.beginScenario(scenario.name);
      try {
        const out = await scenario.run(ctx);
        scenarios.push({ name: scenario.name, title: scenario.title, ...out, seconds: (performance.now() - started) / 1000 });
      } catch (error) {
        const message = error instanceof Error ? error.message.split('\n').slice(0, 3).join(' ') : String(error);
        log(`  ✗ ${scenario.name} failed: ${message}`);
        scenarios.push({ name: scenario.name, title: scenario.title, rows: [], checks: [], notes: [], seconds: (performance.now() - started) / 1000, failed: message });
      } finally {
        await ctx.endScenario();
      }
    }
  } finally {
    await stopAll();
  }
  const loadAfter = loadavg()[0] ?? 0;
  const cpuList = cpus();
  const notes: string[] = [];
  if (Math.max(loadBefore, loadAfter) > 0.5) {
    notes.push(`The machine was shared during this run (load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after, on ${cpuList.length} cores): absolute rates are low and noisy; ratios within a round are the numbers to read.`);
  }
  const results: RunResults = {
    info: {
      date: today(),
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      node: process.version,
      cpus: cpuList.length,
      cpuModel: cpuList[0]?.model ?? 'unknown',
      loadBefore,
      loadAfter,
      quick: cli.quick,
      options: { duration: cli.duration, rounds: cli.rounds, warmup: cli.warmup, connections: cli.connections, storages: cli.storages, sizes: cli.sizes, ferretdbMax: cli.ferretdbMax, profile: cli.profileDir !== undefined, ...(cli.compareDir !== undefined ? { compare: cli.compareDir } : {}) },
      scenarios: chosen.map((s) => s.name),
      skipped: ALL_SCENARIOS.filter((s) => !chosen.includes(s)).map((s) => s.name),
    },
    scenarios,
    notes,
  };
  const full = chosen.length === ALL_SCENARIOS.length;
  const name = `${today()}${full ? '' : `-${chosen.map((s) => s.name).join('-').slice(0, 60)}`}${cli.quick ? '-quick' : ''}`;
  const files = await writeResults(cli.outDir, name, results);
  log(`results: ${files.md}`);
  const missed = scenarios.flatMap((s) => s.checks).filter((c) => !c.ok);
  for (const c of missed) log(`  warning: target missed: ${c.target}: ${c.measured}`);
  if (cli.readme ?? (full && !cli.quick)) {
    const updated = await updateReadme(join(REPO, 'README.md'), renderSummary(results, `${name}.md`));
    log(updated ? 'README summary updated' : 'README has no summary markers; not updated');
  }
  return { results, files };
}

async function main(): Promise<void> {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping everything the bench started\n`);
    stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const cli = parseCli(process.argv.slice(2));
  const { results } = await runBench(cli);
  const failed = results.scenarios.filter((s) => s.failed);
  // Missed targets warn; only a harness failure (a scenario that could not run) sets the exit code.
  process.exitCode = failed.length ? 1 : 0;
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    stopAll().finally(() => process.exit(1));
  });
}
