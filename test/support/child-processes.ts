import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Server processes that the tests start. Three layers make sure none outlives the run:
 * stop() in teardown, a synchronous SIGKILL on process exit, and (on Linux, via
 * util-linux `setpriv --pdeathsig`) a SIGKILL from the kernel if this process dies
 * without running either (SIGKILL, OOM).
 */

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly pid: number | undefined;
  /** Resolves with the exit status once the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** The last few kilobytes of stdout and stderr, for error messages. */
  output(): string;
  /** Resolves with the first complete stdout line, or rejects if the process exits first. */
  firstLine(timeoutMs: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

const OUTPUT_LIMIT = 8192;
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

/** The absolute path of `command` on PATH (plus `extraDirs`), or undefined. */
export function findExecutable(command: string, extraDirs: readonly string[] = []): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), ...extraDirs].filter((dir) => dir !== '');
  for (const dir of dirs) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

let setprivPath: string | null | undefined;

function parentDeathWrapper(): string[] {
  if (setprivPath === undefined) setprivPath = process.platform === 'linux' ? (findExecutable('setpriv') ?? null) : null;
  return setprivPath === null ? [] : [setprivPath, '--pdeathsig', 'KILL', '--'];
}

export interface SpawnOptions {
  /** Keep a stdin pipe open; a child that watches it exits when this process dies. */
  stdinPipe?: boolean;
  env?: NodeJS.ProcessEnv;
}

export function spawnManaged(command: string, args: readonly string[], options: SpawnOptions = {}): ManagedProcess {
  installExitHook();
  const [wrapper, ...wrapperArgs] = [...parentDeathWrapper(), command, ...args];
  const child = spawn(wrapper ?? command, wrapperArgs, {
    stdio: [options.stdinPipe === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
  });
  running.add(child);

  let output = '';
  let stdoutBuffer = '';
  const lineWaiters: Array<(line: string) => void> = [];
  const append = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    append(chunk);
    stdoutBuffer += chunk.toString('utf8');
    let newline = stdoutBuffer.indexOf('\n');
    while (newline !== -1) {
      const line = stdoutBuffer.slice(0, newline).trim();
      stdoutBuffer = stdoutBuffer.slice(newline + 1);
      for (const waiter of lineWaiters.splice(0)) waiter(line);
      newline = stdoutBuffer.indexOf('\n');
    }
  });
  child.stderr?.on('data', append);
  // A pipe to a dead child raises EPIPE on write; nothing is ever written, so ignore it.
  child.stdin?.on('error', () => {});

  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('error', (error) => {
      output += `\nspawn failed: ${error.message}`;
      running.delete(child);
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });

  return {
    pid: child.pid,
    exited,
    output: () => output,
    firstLine(timeoutMs) {
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no output from ${command} within ${timeoutMs} ms\n${output}`)), timeoutMs);
        lineWaiters.push((line) => {
          clearTimeout(timer);
          resolve(line);
        });
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(new Error(`${command} exited (code ${code}, signal ${signal}) before it was ready\n${output}`));
        });
      });
    },
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null || !running.has(child)) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Retries `probe` until it resolves or `timeoutMs` passes; fails early if `exited` settles. */
export async function waitUntilReady(
  what: string,
  probe: () => Promise<void>,
  child: ManagedProcess,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitedEarly: ExitInfo | undefined;
  void child.exited.then((info) => {
    exitedEarly = info;
  });
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (exitedEarly !== undefined) {
      throw new Error(`${what} exited (code ${exitedEarly.code}, signal ${exitedEarly.signal})\n${child.output()}`);
    }
    try {
      await probe();
      return;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what} did not answer within ${timeoutMs} ms: ${String(lastError)}\n${child.output()}`);
}
