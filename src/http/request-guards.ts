import type { Middleware } from 'koa';
import { PayloadTooLargeError } from '../errors/errors.ts';

/** Largest request body accepted anywhere; OAuth requests are small form posts. */
export const BODY_LIMIT_BYTES = 32 * 1024;

/**
 * Refuses a declared oversized body before anyone reads it. A body sent without a length
 * (chunked) is cut by the reader instead: oidc-provider stops at 56 KiB, our form reader at
 * BODY_LIMIT_BYTES.
 */
export function bodyLimit(limit = BODY_LIMIT_BYTES): Middleware {
  // Not async: no promise and no await of its own per request (koa-compose turns the throw
  // into a rejection like any other).
  return (ctx, next) => {
    const length = ctx.request.length;
    if (length !== undefined && length > limit) throw new PayloadTooLargeError(limit);
    return next();
  };
}
