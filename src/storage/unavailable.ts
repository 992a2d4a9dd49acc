/**
 * Whether an error means a store could not be reached (as opposed to a bug or bad data):
 * such a request gets 503 temporarily_unavailable and may be retried, never a 500.
 */
const UNAVAILABLE_NAMES = new Set([
  'MongoServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoNotConnectedError',
  'MongoTopologyClosedError',
  'MongoWaitQueueTimeoutError',
  'MongoOperationTimeoutError',
  'MongoPoolClearedError',
  'MongoPoolClosedError',
  'MongoServerClosedError',
  'MaxRetriesPerRequestError',
]);
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTCONN']);
// ioredis reports a dropped or closed connection, and a command past its commandTimeout, only in its messages.
const UNAVAILABLE_MESSAGES = /Connection is closed|Stream isn't writeable|enableOfflineQueue options is false|Reached the max retries|Command timed out/i;

export function isStoreUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return UNAVAILABLE_NAMES.has(err.name)
    || (typeof code === 'string' && UNAVAILABLE_CODES.has(code))
    || UNAVAILABLE_MESSAGES.test(err.message)
    || (err.cause !== undefined && err.cause !== err && isStoreUnavailable(err.cause));
}
