import { createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStoreUnavailable } from './unavailable.ts';

/** A TCP server that accepts connections and never answers: a hung store. */
let silent: Server;
let port = 0;
const sockets = new Set<Socket>();
beforeAll(async () => {
  silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const address = silent.address();
  port = typeof address === 'object' && address !== null ? address.port : 0;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

function named(name: string, message = 'x'): Error {
  return Object.assign(new Error(message), { name });
}

describe('isStoreUnavailable', () => {
  it('knows the MongoDB driver errors of an unreachable, slow or cleared server, directly or as a cause', () => {
    for (const name of ['MongoServerSelectionError', 'MongoNetworkTimeoutError', 'MongoWaitQueueTimeoutError', 'MongoPoolClearedError']) {
      expect(isStoreUnavailable(named(name)), name).toBe(true);
      expect(isStoreUnavailable(new Error('wrapped', { cause: named(name) })), `${name} as cause`).toBe(true);
    }
  });

  it('does not take a bug or bad data for an outage', () => {
    expect(isStoreUnavailable(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBe(false);
    expect(isStoreUnavailable(named('MongoServerError', 'E11000 duplicate key error'))).toBe(false);
    expect(isStoreUnavailable('Connection is closed')).toBe(false);
  });

  it('knows ioredis giving up on a Redis that accepts the connection and never answers (commandTimeout)', async () => {
    const redis = new Redis({ port, host: '127.0.0.1', enableReadyCheck: false, commandTimeout: 200, retryStrategy: () => null });
    redis.on('error', () => {});
    try {
      const error = await redis.get('k').then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect(isStoreUnavailable(error)).toBe(true);
    } finally {
      redis.disconnect();
    }
  });

  it('knows the MongoDB driver giving up on a server that accepts the connection and never answers', async () => {
    const client = new MongoClient(`mongodb://127.0.0.1:${port}/`, { serverSelectionTimeoutMS: 300, connectTimeoutMS: 300, socketTimeoutMS: 300 });
    try {
      const error = await client.db('d').collection('c').findOne({}).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect(isStoreUnavailable(error)).toBe(true);
    } finally {
      await client.close();
    }
  });
});
