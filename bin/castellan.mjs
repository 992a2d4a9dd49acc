#!/usr/bin/env node
// The `castellan` command. The CLI is TypeScript run by Node's type stripping, which the
// Node on PATH may lack (Node 20) and which no Node applies under node_modules; so this
// plain-JavaScript launcher runs src/admin/cli.ts on the Node pinned in devDependencies
// (node_modules/node, installed by `npm install`), passing arguments, standard streams,
// signals and the exit code through.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'src', 'admin', 'cli.ts');
const pinned = join(root, 'node_modules', 'node', 'bin', process.platform === 'win32' ? 'node.exe' : 'node');
const node = existsSync(pinned) ? pinned : process.execPath;

if (node === process.execPath && !process.features.typescript) {
  process.stderr.write(`castellan: Node ${process.version} cannot run TypeScript and the pinned Node is missing: run npm install in ${root}\n`);
  process.exit(1);
}

const child = spawn(node, [cli, ...process.argv.slice(2)], { stdio: 'inherit' });
// `castellan serve` drains on SIGTERM/SIGINT: pass them on rather than dying first.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => {
  if (signal) process.kill(process.pid, signal);
  else process.exit(code ?? 1);
});
child.on('error', (err) => {
  process.stderr.write(`castellan: cannot start ${node}: ${err.message}\n`);
  process.exit(1);
});
