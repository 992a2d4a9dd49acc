/** What a scenario reports: rows of measurements, target checks and notes. */

export interface Row {
  /** e.g. "castellan production", "bare oidc-provider". */
  target: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  requests: number;
  /** What `rps` counts: req/s (default), ops/s, flows/s. */
  unit?: string;
  /** Name of the row this one is compared with, and the median per-round ratio of rates. */
  baseline?: string;
  ratio?: number;
  /** Server CPU time per request in µs (median over rounds), where measured. */
  cpuUs?: number;
  /** Baseline CPU per request / this row's, median over rounds (the ratio on equal free CPU). */
  cpuRatio?: number;
  /** Resident set size of the server in MiB, where measured. */
  rssMiB?: number;
}

export interface Check {
  /** The target as the issue and README state it. */
  target: string;
  measured: string;
  ok: boolean;
}

export interface ScenarioResult {
  name: string;
  title: string;
  rows: Row[];
  checks: Check[];
  notes: string[];
  seconds: number;
  /** Set when the scenario could not run; the rest of the run goes on. */
  failed?: string;
}

export function check(target: string, value: number, op: '>=' | '<=', limit: number, describe: (v: string) => string): Check {
  const ok = Number.isFinite(value) && (op === '>=' ? value >= limit : value <= limit);
  return { target, measured: describe(Number.isFinite(value) ? value.toFixed(2) : 'n/a'), ok };
}
