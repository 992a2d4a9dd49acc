import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The `castellan` command line (`npm run castellan`), as tests run it. */
export const CLI = join(import.meta.dirname, '..', '..', 'src', 'admin', 'cli.ts');
/** The package's `castellan` bin: a JavaScript launcher that runs CLI on the pinned Node. */
export const CLI_BIN = join(import.meta.dirname, '..', '..', 'bin', 'castellan.mjs');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  /** Run through bin/castellan.mjs on this Node binary instead of src/admin/cli.ts on this one. */
  binOn?: string;
}

/** Runs `castellan <args>` with only PATH and `env`; a non-zero exit is a result, not a throw. */
export async function runCli(env: Record<string, string>, args: string[], options: RunCliOptions = {}): Promise<CliResult> {
  const [node, script] = options.binOn === undefined ? [process.execPath, CLI] : [options.binOn, CLI_BIN];
  try {
    const { stdout, stderr } = await run(node, [script, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
