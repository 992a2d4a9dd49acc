import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Row, ScenarioResult } from './results.ts';

/*
 * The results files (bench/results/<name>.json and .md) and the README summary between
 * the markers of the "Benchmarks" section.
 */

export interface RunInfo {
  date: string;
  startedAt: string;
  finishedAt: string;
  node: string;
  cpus: number;
  cpuModel: string;
  /** 1-minute load average before and after the run. */
  loadBefore: number;
  loadAfter: number;
  quick: boolean;
  options: Record<string, unknown>;
  /** Scenario names this run covered, and the known ones it did not. */
  scenarios: string[];
  skipped: string[];
}

export interface RunResults {
  info: RunInfo;
  scenarios: ScenarioResult[];
  /** Free-form notes written into the .md (machine sharing, profiling findings). */
  notes: string[];
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–');
const ms = (n: number) => (Number.isFinite(n) ? `${fmt(n, n < 10 ? 2 : 1)}` : '–');

function rowLine(row: Row, withCpu: boolean): string {
  const ratio = row.ratio !== undefined && Number.isFinite(row.ratio) ? `${row.ratio.toFixed(2)}× ${row.baseline ?? ''}` : '';
  const rate = `${fmt(row.rps)} ${row.unit ?? 'req/s'}`;
  const rss = row.rssMiB !== undefined ? ` | ${row.rssMiB}` : '';
  const cpu = withCpu ? ` | ${row.cpuUs !== undefined ? fmt(row.cpuUs) : ''} | ${row.cpuRatio !== undefined ? `${row.cpuRatio.toFixed(2)}×` : ''}` : '';
  return `| ${row.target} | ${rate} | ${ms(row.p50)} | ${ms(row.p99)} | ${row.errors} | ${ratio}${cpu}${rss} |`;
}

function table(rows: Row[]): string[] {
  const rss = rows.some((r) => r.rssMiB !== undefined);
  const cpu = rows.some((r) => r.cpuUs !== undefined);
  return [
    `| target | rate | p50 ms | p99 ms | errors | ratio to baseline${cpu ? ' | server CPU µs/req | CPU ratio' : ''}${rss ? ' | RSS MiB' : ''} |`,
    `|---|---:|---:|---:|---:|---|${cpu ? '---:|---:|' : ''}${rss ? '---:|' : ''}`,
    ...rows.map((row) => rowLine(row, cpu)),
  ];
}

export function renderMarkdown(results: RunResults): string {
  const { info } = results;
  const lines: string[] = [
    `# Castellan benchmark results, ${info.date}`,
    '',
    `Run ${info.startedAt} → ${info.finishedAt}, Node ${info.node}, ${info.cpus} × ${info.cpuModel}.`,
    `Load average (1 min) before ${info.loadBefore.toFixed(2)}, after ${info.loadAfter.toFixed(2)}.${info.quick ? ' **Quick mode**: short measurements, for checking the harness, not for numbers.' : ''}`,
    `Options: \`${JSON.stringify(info.options)}\`.`,
    `Scenarios run: ${info.scenarios.join(', ') || 'none'}.${info.skipped.length ? ` Not run: ${info.skipped.join(', ')}.` : ''}`,
    '',
    'Every target of a scenario is measured once per round, in rotating order, all in one run; rates are successful responses per second (median over rounds), latencies are autocannon\'s (median over rounds), ratios are the median of per-round ratios. Servers run as separate processes; the load generator runs in the bench process.',
    '',
    'Server CPU µs/req is the server process\'s user + system CPU time (/proc/<pid>/stat) over the requests it answered in a measurement (median over rounds); CPU ratio is the baseline\'s CPU per request divided by the row\'s (median of per-round ratios): the rate ratio the two would have on equal free CPU. On a shared machine the rate ratio moves with whatever else runs during each 2-second slot; the CPU ratio hardly does (it does not see time spent waiting on FerretDB or Redis, which the rate ratio does).',
    '',
    'Hand-written analysis: [ANALYSIS.md](ANALYSIS.md), and the end of this file below the `bench:analysis` comment, if any (kept when the file is regenerated).',
    '',
  ];
  for (const note of results.notes) lines.push(`> ${note}`, '');
  const allChecks = results.scenarios.flatMap((s) => s.checks);
  if (allChecks.length) {
    lines.push('## Targets', '', '| target | measured | |', '|---|---|---|');
    for (const c of allChecks) lines.push(`| ${c.target} | ${c.measured} | ${c.ok ? 'met' : '**missed**'} |`);
    lines.push('');
  }
  for (const s of results.scenarios) {
    lines.push(`## ${s.name}: ${s.title}`, '');
    if (s.failed) {
      lines.push(`**Failed**: ${s.failed}`, '');
      continue;
    }
    lines.push(...table(s.rows), '');
    for (const note of s.notes) lines.push(`- ${note}`);
    lines.push(`- ${s.seconds.toFixed(0)} s.`, '');
  }
  return `${lines.join('\n')}\n`;
}

/** The short table for the README: the headline rows of each scenario. */
export function renderSummary(results: RunResults, file: string): string {
  const lines = [
    `Latest full run: [${file}](bench/results/${file}) (${results.info.date}, ${results.info.cpus} cores, load average ${results.info.loadBefore.toFixed(1)} before the run).`,
    '',
    '| scenario | target | rate | p99 ms | ratio | CPU ratio |',
    '|---|---|---:|---:|---|---:|',
  ];
  for (const s of results.scenarios) {
    if (s.failed) {
      lines.push(`| ${s.name} | failed | | | | |`);
      continue;
    }
    for (const row of s.rows) {
      const ratio = row.ratio !== undefined && Number.isFinite(row.ratio) ? `${row.ratio.toFixed(2)}× ${row.baseline ?? ''}` : '';
      const cpu = row.cpuRatio !== undefined && Number.isFinite(row.cpuRatio) ? `${row.cpuRatio.toFixed(2)}×` : '';
      lines.push(`| ${s.name} | ${row.target} | ${fmt(row.rps)} ${row.unit ?? 'req/s'} | ${ms(row.p99)} | ${ratio} | ${cpu} |`);
    }
  }
  const checks = results.scenarios.flatMap((s) => s.checks);
  if (checks.length) {
    lines.push('', '| target | measured | |', '|---|---|---|');
    for (const c of checks) lines.push(`| ${c.target} | ${c.measured} | ${c.ok ? 'met' : '**missed**'} |`);
  }
  return lines.join('\n');
}

/**
 * Everything after this line of a results file is hand-written analysis: a new run of the
 * same name keeps it (below the new numbers) instead of deleting it.
 */
export const ANALYSIS_MARK = '<!-- bench:analysis (hand-written, kept when this file is regenerated) -->';
/** Files written before the mark existed: their "## Analysis" heading starts the kept part. */
const LEGACY_ANALYSIS_HEADING = '\n## Analysis\n';

/** The hand-written part of an existing results file, with its mark; '' when there is none. */
export function keptAnalysis(previous: string): string {
  const marked = previous.indexOf(ANALYSIS_MARK);
  if (marked >= 0) return previous.slice(marked);
  const legacy = previous.indexOf(LEGACY_ANALYSIS_HEADING);
  return legacy >= 0 ? `${ANALYSIS_MARK}\n${previous.slice(legacy)}` : '';
}

async function readIfExists(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw error;
  }
}

export async function writeResults(dir: string, name: string, results: RunResults): Promise<{ json: string; md: string }> {
  await mkdir(dir, { recursive: true });
  const json = join(dir, `${name}.json`);
  const md = join(dir, `${name}.md`);
  const analysis = keptAnalysis(await readIfExists(md));
  await writeFile(json, `${JSON.stringify(results, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  await writeFile(md, `${renderMarkdown(results)}${analysis ? `\n${analysis.trimEnd()}\n` : ''}`);
  return { json, md };
}

export const SUMMARY_START = '<!-- bench:summary:start -->';
export const SUMMARY_END = '<!-- bench:summary:end -->';

/** Replaces the text between the README's summary markers; false when the markers are missing. */
export async function updateReadme(readme: string, summary: string): Promise<boolean> {
  const text = await readFile(readme, 'utf8');
  const start = text.indexOf(SUMMARY_START);
  const end = text.indexOf(SUMMARY_END);
  if (start < 0 || end < start) return false;
  const next = `${text.slice(0, start + SUMMARY_START.length)}\n${summary}\n${text.slice(end)}`;
  await writeFile(readme, next);
  return true;
}
