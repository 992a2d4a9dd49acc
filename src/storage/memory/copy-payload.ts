import type { Payload } from '../model-store.ts';

/**
 * A deep copy of a stored payload. oidc-provider's payloads are JSON data (strings,
 * numbers, booleans, null, arrays and plain objects: every store but memory keeps them as
 * JSON), which this copies by hand about five times faster than structuredClone (profiled
 * on the token endpoint: a Client is copied on every request). Anything else (a Date, a
 * Buffer, a Map: never in oidc-provider's payloads) falls back to structuredClone, so the
 * copy is as deep and as independent as before.
 */
export function copyPayload(payload: Payload): Payload {
  return copyObject(payload as Record<string, unknown>) as Payload;
}

function copyValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const copy = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i += 1) copy[i] = copyValue(value[i]);
    return copy;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return structuredClone(value);
  return copyObject(value as Record<string, unknown>);
}

function copyObject(source: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(source)) {
    // An own "__proto__" key (JSON.parse makes one) stays a key: assigning it would set the
    // copy's prototype instead.
    if (key === '__proto__') Object.defineProperty(copy, key, { value: copyValue(source[key]), enumerable: true, writable: true, configurable: true });
    else copy[key] = copyValue(source[key]);
  }
  return copy;
}
