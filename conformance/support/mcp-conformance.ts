import { execFile, execFileSync } from 'node:child_process';
import { globSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { z } from 'zod';

/*
 * Drives the MCP conformance package (@modelcontextprotocol/conformance) through its CLI and
 * reads its verdicts from the checks.json files it writes (-o <dir>), never from its coloured
 * console output.
 */

const require = createRequire(import.meta.url);
/** The package's CLI entry (its bin); run with this process's Node (24, as pinned). */
export const CONFORMANCE_CLI = join(dirname(require.resolve('@modelcontextprotocol/conformance/package.json')), 'dist/index.js');

export interface ListedScenario {
  name: string;
  /** Spec versions the package tags it with: 2025-03-26, 2025-06-18, 2025-11-25, draft, extension. */
  specVersions: string[];
}

/** `conformance list --client|--server`: lines "  - <name> [<version>,<version>]". */
export function listScenarios(side: 'client' | 'server'): ListedScenario[] {
  const output = execFileSync(process.execPath, [CONFORMANCE_CLI, 'list', `--${side}`], { encoding: 'utf8', timeout: 60_000 });
  const scenarios: ListedScenario[] = [];
  for (const line of output.split('\n')) {
    const match = /^\s+- (\S+)(?: \[([^\]]*)\])?\s*$/.exec(line);
    if (match?.[1]) scenarios.push({ name: match[1], specVersions: (match[2] ?? '').split(',').filter((v) => v !== '') });
  }
  if (scenarios.length === 0) throw new Error(`conformance list --${side} listed no scenarios:\n${output}`);
  return scenarios;
}

const checkSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  status: z.enum(['SUCCESS', 'FAILURE', 'WARNING', 'INFO', 'SKIPPED']),
  errorMessage: z.string().optional(),
});
export type ConformanceCheck = z.infer<typeof checkSchema>;

/** The checks.json files under dir, by scenario (the package names each result directory <scenario>-<timestamp>). */
export function readResults(dir: string, prefix = ''): Map<string, ConformanceCheck[]> {
  const results = new Map<string, ConformanceCheck[]>();
  for (const file of globSync('**/checks.json', { cwd: dir })) {
    const scenario = dirname(file).replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, '').slice(prefix.length);
    results.set(scenario, z.array(checkSchema).parse(JSON.parse(readFileSync(join(dir, file), 'utf8'))));
  }
  return results;
}

/**
 * The package's verdict on one scenario, as its CLI computes it: passed when no check failed
 * or warned, and at least one succeeded (a scenario that checked nothing proves nothing).
 * Returns undefined when it passed, else what went wrong (the first such check first).
 */
export function verdict(checks: readonly ConformanceCheck[] | undefined): string | undefined {
  if (!checks) return 'the package wrote no results for this scenario';
  const bad = checks.filter((check) => check.status === 'FAILURE' || check.status === 'WARNING');
  if (bad.length > 0) {
    return bad.map((check) => `${check.status} ${check.id}: ${check.description}${check.errorMessage ? ` (${check.errorMessage})` : ''}`).join('; ');
  }
  if (!checks.some((check) => check.status === 'SUCCESS')) return 'no check succeeded';
  return undefined;
}

export interface CliRun {
  exitCode: number;
  output: string;
}

/** Runs the conformance CLI with these arguments (never throws on a non-zero exit). */
export function runCli(args: readonly string[], timeoutMs: number): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CONFORMANCE_CLI, ...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) => {
      const code = error && typeof error.code === 'number' ? error.code : error ? -1 : 0;
      resolve({ exitCode: code, output: `${stdout}${stderr}` });
    });
  });
}

/** Runs fn over items, at most `concurrency` at a time, keeping the results in order. */
export async function inPool<T, R>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
