import pino from 'pino';
import { loadSettings, type Settings } from '../../config/settings.ts';
import { createLogger } from '../../observability/logger.ts';
import { openCore, type CastellanCore } from '../../server.ts';

/**
 * The server's settings, refusing the in-memory store: the CLI must change the stores a
 * running server uses, and an in-memory store is private to its process.
 */
export function sharedStoreSettings(): Settings | undefined {
  const settings = loadSettings();
  if (settings.storage !== 'memory') return settings;
  process.stderr.write('no MONGODB_URL: an in-memory store cannot be shared with a running server\n');
  return undefined;
}

/**
 * Opens the server's stores, runs one command against them and closes them again. Logs
 * (audit lines included) go to stderr at warn: stdout carries only the command's results.
 */
export async function withCore(command: (core: CastellanCore, settings: Settings) => Promise<number>): Promise<number> {
  const settings = sharedStoreSettings();
  if (!settings) return 2;
  const core = await openCore(settings, createLogger('warn', pino.destination({ dest: 2, sync: true })));
  try {
    return await command(core, settings);
  } finally {
    await core.close();
  }
}

/** The first line of standard input: how a password reaches the CLI without showing in `ps`. */
export async function readFirstLineOfStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if (Buffer.concat(chunks).includes(0x0a)) break;
  }
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}
