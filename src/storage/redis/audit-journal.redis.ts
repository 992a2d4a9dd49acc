import { parseJournaledEvent, type AuditJournal, type JournalEntry } from '../../observability/audit-journal.ts';
import type { RedisClient } from './redis-model-store.ts';

/**
 * The audit journal as a Redis stream, `<prefix>:audit-journal`, read through one consumer
 * group (`movers`) so each entry is moved by one node. An entry's single field `e` holds the
 * event's JSON. Acknowledged entries are deleted, so the stream holds only what is not yet in
 * the chain. Durable as Redis is (production: AOF, docker-compose.yml).
 */

const GROUP = 'movers';
const FIELD = 'e';

type StreamItem = [id: string, fields: string[] | null];

function entriesOf(items: readonly StreamItem[]): JournalEntry[] {
  return items.map(([id, fields]) => {
    // An entry deleted while pending reads back with no fields.
    const at = fields ? fields.indexOf(FIELD) : -1;
    return { id, event: fields && at >= 0 ? parseJournaledEvent(fields[at + 1]) : undefined };
  });
}

function isNoGroup(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOGROUP');
}

export function createRedisAuditJournal(redis: RedisClient, prefix: string): AuditJournal {
  const key = `${prefix}:audit-journal`;

  async function createGroup(): Promise<void> {
    try {
      await redis.xgroup('CREATE', key, GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
    }
  }

  /** Runs a group command; a Redis that lost the group (restarted without persistence) gets it again. */
  async function withGroup<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (err) {
      if (!isNoGroup(err)) throw err;
      await createGroup();
      return command();
    }
  }

  return {
    async add(event) {
      const id = await redis.xadd(key, '*', FIELD, JSON.stringify(event));
      return id ?? '';
    },
    async take(consumer, count, own) {
      const reply = (await withGroup(() => redis.xreadgroup('GROUP', GROUP, consumer, 'COUNT', count, 'STREAMS', key, own ? '0' : '>'))) as
        | Array<[string, StreamItem[]]>
        | null;
      return entriesOf(reply?.[0]?.[1] ?? []);
    },
    async claimAbandoned(consumer, idleMs, count) {
      const reply = (await withGroup(() => redis.xautoclaim(key, GROUP, consumer, idleMs, '0-0', 'COUNT', count))) as
        [string, StreamItem[], string[]?];
      return entriesOf(reply[1]);
    },
    backlog: () => redis.xlen(key),
    async acknowledge(ids) {
      if (ids.length === 0) return;
      await Promise.all([redis.xack(key, GROUP, ...ids), redis.xdel(key, ...ids)]);
    },
  };
}
