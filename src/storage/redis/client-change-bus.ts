import type { Cluster, Redis } from 'ioredis';
import type { ClientChangeBus } from '../client-cache.ts';
import type { RedisClient } from './redis-model-store.ts';
import { within } from '../../shared/within.ts';

/**
 * Cross-node announcements of changed clients over Redis pub/sub (ARCHITECTURE.md "Beyond
 * one machine": nodes hold caches only, invalidated through Redis). One channel per
 * deployment prefix, `<prefix>:client-changed`; a message is the JSON `[namespace, clientId]`.
 *
 * The subscription has its own connection (a subscribed connection can run no other
 * command). `listening()` is true only between a confirmed SUBSCRIBE and the next loss of
 * that connection; ioredis reconnects by itself, and every confirmed (re)subscription calls
 * `onListening`, so the cache can drop what it may have missed while deaf.
 */

export interface RedisClientChangeBusOptions {
  prefix: string;
  /** A client changed on some node (this one included). */
  onChange(namespace: string, clientId: string): void;
  /** The subscription is (again) confirmed: announcements made while deaf are lost. */
  onListening(): void;
  /** The subscription connection was lost. */
  onDeaf(): void;
  onError?: (error: Error) => void;
}

export interface RedisClientChangeBus extends ClientChangeBus {
  /** Resolves at the first confirmed subscription, or false after `timeoutMs` (then it keeps trying). */
  ready(timeoutMs: number): Promise<boolean>;
}

export function channelName(prefix: string): string {
  return `${prefix}:client-changed`;
}

function parseMessage(message: string): [string, string] | undefined {
  try {
    const value: unknown = JSON.parse(message);
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string') {
      return [value[0], value[1]];
    }
  } catch {
    // not ours: ignored
  }
  return undefined;
}

export function createRedisClientChangeBus(redis: RedisClient, options: RedisClientChangeBusOptions): RedisClientChangeBus {
  const channel = channelName(options.prefix);
  // Resubscription is done here, after 'ready', so that "listening" means confirmed. No
  // command timeout: the subscription is on no request's path, and a SUBSCRIBE given up while
  // Redis stalled would leave "listening" false after Redis answers it.
  const subscriber: RedisClient = redis.isCluster
    ? (redis as Cluster).duplicate([], { lazyConnect: true })
    : (redis as Redis).duplicate({
      lazyConnect: true, autoResubscribe: false, maxRetriesPerRequest: null, commandTimeout: undefined, connectionName: `${channel}-subscriber`,
    });
  let listening = false;
  let closed = false;
  let resolveReady: () => void = () => {};
  const firstReady = new Promise<void>((resolve) => {
    resolveReady = resolve;
  });

  subscriber.on('message', (from: string, message: string) => {
    if (from !== channel) return;
    const parsed = parseMessage(message);
    if (parsed !== undefined) options.onChange(parsed[0], parsed[1]);
  });
  subscriber.on('ready', () => {
    subscriber.subscribe(channel).then(
      () => {
        if (closed) return;
        options.onListening();
        listening = true;
        resolveReady();
      },
      (error: unknown) => options.onError?.(error instanceof Error ? error : new Error(String(error))),
    );
  });
  subscriber.on('close', () => {
    if (listening) options.onDeaf();
    listening = false;
  });
  subscriber.on('error', (error: Error) => options.onError?.(error));
  subscriber.connect().catch((error: unknown) => options.onError?.(error instanceof Error ? error : new Error(String(error))));

  return {
    async publish(namespace, clientId) {
      await redis.publish(channel, JSON.stringify([namespace, clientId]));
    },
    listening: () => listening,
    ready: (timeoutMs) => within(firstReady.then(() => true), timeoutMs, false),
    async close() {
      closed = true;
      if (listening) options.onDeaf();
      listening = false;
      subscriber.disconnect();
    },
  };
}
