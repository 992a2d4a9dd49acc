import type { Context } from 'koa';
import { InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError } from '../errors/errors.ts';
import { BODY_LIMIT_BYTES } from './request-guards.ts';

/** Reads the whole body, refusing more than `limit` bytes whatever Content-Length said. */
async function readBodyText(ctx: Context, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of ctx.req) {
    const buffer = chunk as Buffer;
    received += buffer.length;
    if (received > limit) throw new PayloadTooLargeError(limit);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads an application/x-www-form-urlencoded body, refusing other types and oversized bodies. */
export async function readFormBody(ctx: Context, limit = BODY_LIMIT_BYTES): Promise<URLSearchParams> {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    throw new UnsupportedMediaTypeError('application/x-www-form-urlencoded');
  }
  return new URLSearchParams(await readBodyText(ctx, limit));
}

/** Reads a JSON object body (RFC 7591 requests), refusing other types, arrays and bad JSON. */
export async function readJsonObjectBody(ctx: Context, limit = BODY_LIMIT_BYTES): Promise<Record<string, unknown>> {
  if (!ctx.is('application/json')) throw new UnsupportedMediaTypeError('application/json');
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readBodyText(ctx, limit));
  } catch (err) {
    if (err instanceof PayloadTooLargeError) throw err;
    throw new InvalidRequestError('request body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidRequestError('request body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}
