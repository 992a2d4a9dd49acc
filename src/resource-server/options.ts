import { z } from 'zod';

/** A clock in milliseconds since the epoch (Date.now's shape): injectable so tests need not wait. */
export type Clock = () => number;

export const clockSchema = z.custom<Clock>((v) => typeof v === 'function', 'must be a function returning epoch milliseconds');
export const fetchSchema = z.custom<typeof fetch>((v) => typeof v === 'function', 'must be a fetch function');
export const httpUrlSchema = z.url({ protocol: /^https?$/ });

/** Validates a factory's options once, at construction: a misconfigured verifier fails at start, not per request. */
export function parseOptions<T extends z.ZodType>(schema: T, input: unknown, what: string): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw new TypeError(`${what}: ${z.prettifyError(result.error)}`);
  return result.data;
}
