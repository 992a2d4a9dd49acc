import { globSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import type { Reporter, TestCase, TestModule, TestRunEndReason, Vitest } from 'vitest/node';
import { loadExpectedFailures } from './support/expected-failures.ts';

/*
 * Writes conformance/REPORT.md after a full conformance run: a summary, then one row per check
 * (suite, scenario, result, note), sorted by suite then scenario, with no timings or dates, so
 * a run with the same outcome leaves the file unchanged. It also refreshes the summary line in
 * README.md (between the conformance:summary markers).
 *
 * A partial run (some suite files, a -t filter, an interrupted run) writes nothing: a report
 * of some checks would read as the report of all.
 */

export type CheckResult = 'pass' | 'known failure' | 'not applicable' | 'FAIL';

export interface CheckRow {
  suite: string;
  scenario: string;
  result: CheckResult;
  note: string;
}

const SUITES_GLOB = 'conformance/suites/**/*.test.ts';
const REPORT_PATH = 'conformance/REPORT.md';
const README_PATH = 'README.md';
const SUMMARY_START = '<!-- conformance:summary:start -->';
const SUMMARY_END = '<!-- conformance:summary:end -->';

/** One line of text for a table cell: first line only, pipes escaped, trimmed. */
function cell(text: string): string {
  const first = text.split('\n').find((line) => line.trim() !== '') ?? '';
  return first.trim().replace(/\\/g, '\\\\').replace(/\|/g, '\\|');
}

/** The describe names above a test (outermost first), then its own name. */
function namePath(test: TestCase): string[] {
  const names = [test.name];
  for (let parent = test.parent; parent.type === 'suite'; parent = parent.parent) names.unshift(parent.name);
  return names;
}

export function rowOf(test: TestCase, knownReason: (suite: string, scenario: string) => string | undefined): CheckRow {
  const [suite = '', ...rest] = namePath(test);
  const scenario = rest.length > 0 ? rest.join(' › ') : suite;
  const result = test.result();
  if (result.state === 'skipped') {
    return { suite, scenario, result: 'not applicable', note: result.note ?? 'skipped without a reason' };
  }
  if (result.state === 'passed') {
    if (test.options.fails) return { suite, scenario, result: 'known failure', note: knownReason(suite, scenario) ?? 'listed as a known failure' };
    return { suite, scenario, result: 'pass', note: '' };
  }
  if (result.state === 'failed') {
    const message = result.errors[0]?.message ?? 'failed';
    const note = test.options.fails ? `listed as a known failure but passed: remove it from expected-failures.json (${message})` : message;
    return { suite, scenario, result: 'FAIL', note };
  }
  return { suite, scenario, result: 'FAIL', note: 'did not run' };
}

const byName = (a: CheckRow, b: CheckRow): number =>
  a.suite < b.suite ? -1 : a.suite > b.suite ? 1 : a.scenario < b.scenario ? -1 : a.scenario > b.scenario ? 1 : 0;

export function summarize(rows: readonly CheckRow[]): Record<CheckResult, number> & { checks: number } {
  const count = (result: CheckResult) => rows.filter((row) => row.result === result).length;
  return { checks: rows.length, pass: count('pass'), 'known failure': count('known failure'), 'not applicable': count('not applicable'), FAIL: count('FAIL') };
}

export function summaryLine(rows: readonly CheckRow[]): string {
  const s = summarize(rows);
  return `${s.checks} checks, ${s.pass} passed (known failures: ${s['known failure']}, not applicable: ${s['not applicable']}, failed: ${s.FAIL})`;
}

export function renderReport(unsorted: readonly CheckRow[]): string {
  const rows = [...unsorted].sort(byName);
  const s = summarize(rows);
  const suites = [...new Set(rows.map((row) => row.suite))];
  const lines = [
    '# Conformance report',
    '',
    'Written by `npm run conformance` (conformance/report-reporter.ts); do not edit by hand.',
    'Known failures are listed with their reason in conformance/expected-failures.json.',
    '',
    '## Summary',
    '',
    '| checks | passed | known failures | not applicable | failed |',
    '|---:|---:|---:|---:|---:|',
    `| ${s.checks} | ${s.pass} | ${s['known failure']} | ${s['not applicable']} | ${s.FAIL} |`,
    '',
    '| suite | checks | passed | known failures | not applicable | failed |',
    '|---|---:|---:|---:|---:|---:|',
    ...suites.map((suite) => {
      const t = summarize(rows.filter((row) => row.suite === suite));
      return `| ${cell(suite)} | ${t.checks} | ${t.pass} | ${t['known failure']} | ${t['not applicable']} | ${t.FAIL} |`;
    }),
    '',
    '## Checks',
    '',
    '| suite | scenario | result | note |',
    '|---|---|---|---|',
    ...rows.map((row) => `| ${cell(row.suite)} | ${cell(row.scenario)} | ${row.result === 'FAIL' ? '**FAIL**' : row.result} | ${cell(row.note)} |`),
    '',
  ];
  return lines.join('\n');
}

/** README.md with the text between the summary markers replaced (unchanged without markers). */
export function withReadmeSummary(readme: string, rows: readonly CheckRow[]): string {
  const start = readme.indexOf(SUMMARY_START);
  const end = readme.indexOf(SUMMARY_END);
  if (start < 0 || end < start) return readme;
  const block = `${SUMMARY_START}\nLatest report ([conformance/REPORT.md](conformance/REPORT.md)): ${summaryLine(rows)}.\n`;
  return readme.slice(0, start) + block + readme.slice(end);
}

function writeIfChanged(path: string, text: string): void {
  let current: string | undefined;
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    current = undefined;
  }
  if (current !== text) writeFileSync(path, text);
}

export default class ConformanceReportReporter implements Reporter {
  #root = process.cwd();
  #filtered = false;

  onInit(vitest: Vitest): void {
    this.#root = vitest.config.root;
    this.#filtered = Boolean(vitest.config.testNamePattern);
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>, reason: TestRunEndReason): void {
    const expected = new Set(globSync(SUITES_GLOB, { cwd: this.#root }).map((path) => resolve(this.#root, path)));
    const ran = new Set(testModules.map((module) => resolve(module.moduleId)));
    const missing = [...expected].filter((path) => !ran.has(path));
    if (reason === 'interrupted' || this.#filtered || missing.length > 0) {
      process.stdout.write(`\nconformance: partial run, ${REPORT_PATH} left as it was\n`);
      return;
    }
    const known = loadExpectedFailures();
    const knownReason = (suite: string, scenario: string) => known.find((k) => k.suite === suite && k.scenario === scenario)?.reason;
    const rows: CheckRow[] = [];
    for (const module of testModules) {
      const tests = [...module.children.allTests()];
      if (tests.length === 0 || module.state() === 'failed') {
        const errors = module.errors();
        if (tests.length === 0 || errors.length > 0) {
          rows.push({ suite: relative(this.#root, module.moduleId), scenario: '(the suite did not load)', result: 'FAIL', note: errors[0]?.message ?? 'no checks' });
        }
      }
      for (const test of tests) rows.push(rowOf(test, knownReason));
    }
    for (const error of unhandledErrors) {
      const message = error instanceof Error ? error.message : typeof error === 'object' && error !== null && 'message' in error ? String(error.message) : String(error);
      rows.push({ suite: '(run)', scenario: 'unhandled error', result: 'FAIL', note: message });
    }
    writeIfChanged(join(this.#root, REPORT_PATH), renderReport(rows));
    const readmePath = join(this.#root, README_PATH);
    writeIfChanged(readmePath, withReadmeSummary(readFileSync(readmePath, 'utf8'), rows));
    process.stdout.write(`\nconformance: ${summaryLine(rows)} (${REPORT_PATH})\n`);
  }
}
