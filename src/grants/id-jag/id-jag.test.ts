import { errors } from 'oidc-provider';
import { describe, expect, it } from 'vitest';
import { errorCode, scopeList, scopesWithin } from './id-jag.ts';

describe('ID-JAG scope rules (RFC 6749 §3.3 under a ceiling)', () => {
  it('grants what was asked within the ceiling, or the whole ceiling when nothing was asked', () => {
    expect(scopesWithin('a', ['a', 'b'], 'x')).toEqual(['a']);
    expect(scopesWithin(undefined, ['a', 'b'], 'x')).toEqual(['a', 'b']);
    expect(scopesWithin('a  a', ['a'], 'x')).toEqual(['a']);
  });

  it('refuses any excess with invalid_scope naming it', () => {
    expect(() => scopesWithin('a c', ['a', 'b'], 'the ceiling')).toThrow(errors.InvalidScope);
    try {
      scopesWithin('a c', ['a', 'b'], 'the ceiling');
    } catch (err) {
      expect((err as InstanceType<typeof errors.InvalidScope>).error_description).toBe('scope exceeds the ceiling: c');
    }
  });

  it('parses scope strings and names errors for audit', () => {
    expect(scopeList(' a b  a ')).toEqual(['a', 'b']);
    expect(scopeList(undefined)).toEqual([]);
    expect(errorCode(new errors.InvalidTarget('x'))).toBe('invalid_target');
    expect(errorCode(new Error('boom'))).toBe('server_error');
  });
});
