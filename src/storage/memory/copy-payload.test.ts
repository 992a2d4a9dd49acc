import { describe, expect, it } from 'vitest';
import { copyPayload } from './copy-payload.ts';

describe('copyPayload', () => {
  it('copies JSON payloads deeply: changing the copy never reaches the original', () => {
    const original = {
      jti: 'grant-1',
      openid: { scope: 'openid', claims: ['sub'] },
      resources: { 'https://rs.example/api': 'notes:read' },
      rejected: [{ scope: 'x' }],
      exp: 123,
      consumed: null,
      flag: true,
    };
    const copy = copyPayload(original);
    expect(copy).toEqual(original);
    (copy.openid as { claims: string[] }).claims.push('email');
    (copy.resources as Record<string, string>)['https://rs.example/api'] = 'notes:write';
    ((copy.rejected as Array<{ scope: string }>)[0] as { scope: string }).scope = 'y';
    copy.exp = 999;
    expect(original.openid.claims).toEqual(['sub']);
    expect(original.resources['https://rs.example/api']).toBe('notes:read');
    expect(original.rejected[0]?.scope).toBe('x');
    expect(original.exp).toBe(123);
  });

  it('copies values that are not JSON (dates, buffers) with structuredClone', () => {
    const when = new Date(0);
    const bytes = Buffer.from('abc');
    const copy = copyPayload({ when, nested: { bytes } });
    expect(copy.when).toEqual(when);
    expect(copy.when).not.toBe(when);
    expect((copy.nested as { bytes: Uint8Array }).bytes).not.toBe(bytes);
    expect(Array.from((copy.nested as { bytes: Uint8Array }).bytes)).toEqual(Array.from(bytes));
  });

  it('keeps an own __proto__ key as a key, never as the prototype', () => {
    const original = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, unknown>;
    const copy = copyPayload(original);
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(Object.keys(copy)).toEqual(['__proto__', 'a']);
    expect((copy as { polluted?: unknown }).polluted).toBeUndefined();
    expect(Object.getOwnPropertyDescriptor(copy, '__proto__')?.value).toEqual({ polluted: true });
  });

  it('keeps keys whose value is undefined, like structuredClone', () => {
    const copy = copyPayload({ a: undefined, b: 1 });
    expect(Object.keys(copy)).toEqual(['a', 'b']);
  });
});
