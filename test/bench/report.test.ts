import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ANALYSIS_MARK, keptAnalysis, writeResults, type RunResults } from '../../bench/lib/report.ts';
import { summarise } from '../../bench/profile-summary.ts';

/* The results writer keeps hand-written analysis; the profile summary adds up what it should. */

const results: RunResults = {
  info: {
    date: '2026-01-01', startedAt: 'a', finishedAt: 'b', node: 'v24', cpus: 2, cpuModel: 'cpu', loadBefore: 0, loadAfter: 0,
    quick: true, options: {}, scenarios: ['cc-jwt'], skipped: [],
  },
  scenarios: [{
    name: 'cc-jwt', title: 'client_credentials', checks: [], notes: [], seconds: 1,
    rows: [
      { target: 'castellan memory', rps: 900, p50: 1, p99: 2, errors: 0, requests: 900, baseline: 'bare', ratio: 0.9, cpuUs: 250, cpuRatio: 0.8 },
      { target: 'bare', rps: 1000, p50: 1, p99: 2, errors: 0, requests: 1000, cpuUs: 200 },
    ],
  }],
  notes: [],
};

describe('bench results files', () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps the hand-written analysis of a results file when the same file is written again', async () => {
    dir = await mkdtemp(join(tmpdir(), 'castellan-report-test-'));
    const first = await writeResults(dir, 'run', results);
    const written = await readFile(first.md, 'utf8');
    expect(written).toContain('| castellan memory | 900 req/s |');
    expect(written).toContain('| 250 | 0.80× |');
    await writeFile(first.md, `${written}\n${ANALYSIS_MARK}\n\n## Analysis\n\nThe cause was X.\n`);
    await writeResults(dir, 'run', { ...results, info: { ...results.info, startedAt: 'second run' } });
    const again = await readFile(first.md, 'utf8');
    expect(again).toContain('second run');
    expect(again).toContain('The cause was X.');
    expect(again.split(ANALYSIS_MARK)).toHaveLength(2);
  });

  it('treats a "## Analysis" section of an older file as hand-written', () => {
    expect(keptAnalysis('# Results\n\n| a |\n\n## Analysis\n\nWhy.\n')).toBe(`${ANALYSIS_MARK}\n\n## Analysis\n\nWhy.\n`);
    expect(keptAnalysis('# Results only\n')).toBe('');
  });
});

describe('profile summary', () => {
  it('adds self time per function and inclusive time once per file on the stack', () => {
    const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0 });
    const profile = {
      nodes: [
        { id: 1, callFrame: frame('(root)', ''), children: [2, 4] },
        { id: 2, callFrame: frame('handle', 'file:///work/main/src/http/app.ts'), children: [3] },
        { id: 3, callFrame: frame('inner', 'file:///work/main/src/http/app.ts') },
        { id: 4, callFrame: frame('(idle)', '') },
      ],
      samples: [3, 3, 2, 4],
      timeDeltas: [1000, 1000, 1000, 5000],
      startTime: 0,
      endTime: 8000,
    };
    const summary = summarise(profile);
    expect(summary.totalMs).toBe(8);
    expect(summary.idleMs).toBe(5);
    expect(summary.inclusiveByGroup).toContainEqual(['src/http/app.ts', 3]);
    expect(summary.selfByFunction[0]).toEqual(['(idle) (idle):1', 5]);
    expect(summary.selfByFunction).toContainEqual(['inner src/http/app.ts:1', 2]);
    // Samples before the first one with a matching frame are left out.
    expect(summarise(profile, /inner/).totalMs).toBe(8);
    expect(summarise({ ...profile, samples: [4, 3, 2, 4] }, /inner/).totalMs).toBe(7);
  });
});
