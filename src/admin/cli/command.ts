import { userInfo } from 'node:os';
import type { AdminActor } from '../services/admin-actor.ts';

/**
 * One verb group of the `castellan` command line (`key`, `tenant`, ...). `run` gets the
 * arguments after the group's name and returns the exit code: 0 done, 1 refused or failed
 * (said on stderr), 2 bad usage. `serving` means the process keeps running (serve).
 */
export interface CommandGroup {
  readonly name: string;
  /** Its lines of the usage text. */
  readonly usage: string;
  run(args: string[]): Promise<number | 'serving'>;
}

/** Bad usage: the message and a pointer to --help on stderr, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Results go to stdout, one per line; everything else (notes, errors, logs) to stderr. */
export function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** The CLI's actor in audit events: the operating-system user running it. */
export function cliActor(): AdminActor {
  let subject: string;
  try {
    subject = userInfo().username;
  } catch {
    // No passwd entry (some containers): the environment's word, or "unknown".
    subject = process.env.USER ?? process.env.LOGNAME ?? 'unknown';
  }
  return { via: 'cli', subject: subject || 'unknown' };
}

/** A positional argument that must be there, or a UsageError naming it. */
export function required(value: string | undefined, what: string): string {
  if (value === undefined || value === '') throw new UsageError(`missing ${what}`);
  return value;
}
