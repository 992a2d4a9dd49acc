import type { RunningHttpServer } from './http.ts';

/*
 * What the examples' entry points share: settings from the environment with the demo's
 * defaults, and a clean stop on Ctrl-C.
 */

export function envString(name: string, fallback: string): string {
  const value = process.env[name];
  return value === undefined || value === '' ? fallback : value;
}

export function envPort(name: string, fallback: number): number {
  const raw = envString(name, String(fallback));
  const port = Number(raw);
  if (!/^\d{1,5}$/.test(raw) || port > 65_535) throw new Error(`${name} must be a port number, not ${JSON.stringify(raw)}`);
  return port;
}

/** A setting without a sensible default (a secret): the first of the names that is set. */
export function envRequired(names: readonly string[], hint: string): string {
  for (const name of names) {
    const value = process.env[name];
    if (value) return value;
  }
  throw new Error(`set ${names.join(' or ')}: ${hint}`);
}

/** Runs an example until SIGINT/SIGTERM, then closes it; a failed start exits with status 1. */
export function runUntilSignal(start: () => Promise<RunningHttpServer>, describe: (server: RunningHttpServer) => string): void {
  start().then(
    (server) => {
      console.log(describe(server));
      const stop = () => {
        server.close().then(() => process.exit(0), () => process.exit(1));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
