import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

/*
 * Summarises a V8 .cpuprofile (node --cpu-prof, `npm run bench -- <scenario> --profile`):
 *
 *   npx node bench/profile-summary.ts <file.cpuprofile> [--top 30] [--per-request N] [--since REGEX]
 *
 * - self time by function and by package (node_modules/<pkg>, our src/<file>, node:*, GC, idle);
 * - inclusive time per our own source file and per package (a sample counts once per file
 *   on its stack), which shows what a layer costs with everything it calls;
 * - with --per-request N, every figure is also given in µs per request;
 * - with --since REGEX, samples before the first stack with a matching frame ("name group")
 *   are left out: `--since src/http/app.ts` (Castellan) or `--since clientCredentialsHandler`
 *   drops start-up.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const REPO_MARK = '/work/main/';

/** The group a frame belongs to: a package, one of our files, node internals or a V8 pseudo-frame. */
export function groupOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node:*';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    const name = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? '?');
    return `pkg:${name}`;
  }
  const path = url.replace(/^file:\/\//, '');
  const at = path.indexOf(REPO_MARK);
  return at >= 0 ? path.slice(at + REPO_MARK.length) : basename(path);
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  selfByFunction: Array<[string, number]>;
  selfByGroup: Array<[string, number]>;
  inclusiveByGroup: Array<[string, number]>;
}

/**
 * `since`: count only samples from the first one whose stack has a frame matching it (e.g.
 * `src/http/app.ts`, the first request), so start-up (module compilation, type stripping,
 * key loading) does not blur the per-request picture.
 */
export function summarise(profile: CpuProfile, since?: RegExp): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const selfFn = new Map<string, number>();
  const selfGroup = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let started = since === undefined;
  const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (!node) return;
    if (!started && since) {
      for (let at: number | undefined = id; at !== undefined && !started; at = parent.get(at)) {
        const frame = byId.get(at)?.callFrame;
        if (frame && since.test(`${frame.functionName} ${groupOf(frame)}`)) started = true;
      }
      if (!started) return;
    }
    total += us;
    const frame = node.callFrame;
    if (frame.functionName === '(idle)') idle += us;
    const group = groupOf(frame);
    add(selfGroup, group, us);
    add(selfFn, `${frame.functionName || '(anonymous)'} ${group}:${frame.lineNumber + 1}`, us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const n = byId.get(at);
      if (!n || n.callFrame.functionName === '(root)') continue;
      const g = groupOf(n.callFrame);
      if (!seen.has(g)) {
        seen.add(g);
        add(inclusive, g, us);
      }
    }
  });
  const sorted = (map: Map<string, number>) => [...map.entries()].map(([k, us]) => [k, us / 1000] as [string, number]).sort((a, b) => b[1] - a[1]);
  return { totalMs: total / 1000, idleMs: idle / 1000, selfByFunction: sorted(selfFn), selfByGroup: sorted(selfGroup), inclusiveByGroup: sorted(inclusive) };
}

function render(title: string, rows: Array<[string, number]>, top: number, busyMs: number, perRequest: number | undefined): string[] {
  const lines = [`## ${title}`, ''];
  for (const [name, msValue] of rows.slice(0, top)) {
    const share = ((msValue / busyMs) * 100).toFixed(1).padStart(5);
    const per = perRequest ? `  ${((msValue * 1000) / perRequest).toFixed(1).padStart(7)} µs/req` : '';
    lines.push(`${msValue.toFixed(0).padStart(8)} ms ${share}% of busy${per}  ${name}`);
  }
  lines.push('');
  return lines;
}

async function main(argv: string[]): Promise<void> {
  const file = argv.find((a, i) => !a.startsWith('--') && !['--top', '--per-request', '--since'].includes(argv[i - 1] ?? ''));
  if (!file) throw new Error('usage: profile-summary.ts <file.cpuprofile> [--top N] [--per-request N]');
  const flag = (name: string) => {
    const at = argv.indexOf(name);
    return at >= 0 ? Number(argv[at + 1]) : undefined;
  };
  const top = flag('--top') ?? 30;
  const perRequest = flag('--per-request');
  const sinceAt = argv.indexOf('--since');
  const since = sinceAt >= 0 && argv[sinceAt + 1] ? new RegExp(argv[sinceAt + 1] ?? '') : undefined;
  const summary = summarise(JSON.parse(await readFile(file, 'utf8')) as CpuProfile, since);
  const busy = summary.totalMs - summary.idleMs;
  const ours = summary.inclusiveByGroup.filter(([g]) => g.startsWith('src/') || g.startsWith('bench/'));
  const out = [
    `${file}: ${summary.totalMs.toFixed(0)} ms sampled, ${summary.idleMs.toFixed(0)} ms idle, ${busy.toFixed(0)} ms busy`,
    '',
    ...render('self time by function', summary.selfByFunction.filter(([k]) => !k.startsWith('(idle)')), top, busy, perRequest),
    ...render('self time by package / file', summary.selfByGroup.filter(([k]) => k !== '(idle)'), top, busy, perRequest),
    ...render('inclusive time by package / file', summary.inclusiveByGroup.filter(([k]) => k !== '(idle)'), top, busy, perRequest),
    ...render('inclusive time of our own source files', ours, top, busy, perRequest),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
