import type { Context } from 'koa';
import { PayloadTooLargeError, UnsupportedMediaTypeError } from '../errors/errors.ts';
import { BODY_LIMIT_BYTES } from './request-guards.ts';

/** Reads an application/x-www-form-urlencoded body, refusing other types and oversized bodies. */
export async function readFormBody(ctx: Context, limit = BODY_LIMIT_BYTES): Promise<URLSearchParams> {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    throw new UnsupportedMediaTypeError('application/x-www-form-urlencoded');
  }
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of ctx.req) {
    const buffer = chunk as Buffer;
    received += buffer.length;
    if (received > limit) throw new PayloadTooLargeError(limit);
    chunks.push(buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
