import { describe, expect, it } from 'vitest';
import { chainDepth, delegationChain, mayAct, parseAct } from './delegation.ts';

describe('delegation chains (RFC 8693 §4.1, §4.4)', () => {
  it('puts the new actor on top of an earlier act chain', () => {
    const act = delegationChain('gateway', { sub: 'alice', clientId: 'service-a', act: { sub: 'service-a', act: { sub: 'agent' } } });
    expect(act).toEqual({ sub: 'gateway', act: { sub: 'service-a', act: { sub: 'agent' } } });
    expect(chainDepth(act)).toBe(3);
  });

  it('treats the client a user token was issued to as the first actor', () => {
    expect(delegationChain('service-a', { sub: 'alice', clientId: 'agent', act: undefined })).toEqual({ sub: 'service-a', act: { sub: 'agent' } });
  });

  it('does not nest an actor under itself, nor invent one for a client\'s own token', () => {
    expect(delegationChain('agent', { sub: 'alice', clientId: 'agent', act: undefined })).toEqual({ sub: 'agent' });
    expect(delegationChain('service-a', { sub: 'worker', clientId: 'worker', act: undefined })).toEqual({ sub: 'service-a' });
  });

  it('honours may_act by sub or client_id, and refuses malformed ones', () => {
    expect(mayAct(undefined, 'x')).toBe(true);
    expect(mayAct({ sub: 'x' }, 'x')).toBe(true);
    expect(mayAct({ client_id: 'x' }, 'x')).toBe(true);
    expect(mayAct({ sub: 'y' }, 'x')).toBe(false);
    expect(mayAct('x', 'x')).toBe(false);
  });

  it('parses act claims strictly', () => {
    expect(parseAct({ sub: 'a', act: { sub: 'b' }, extra: 1 })).toEqual({ sub: 'a', act: { sub: 'b' } });
    expect(() => parseAct({ act: { sub: 'b' } })).toThrow(TypeError);
    expect(() => parseAct('a')).toThrow(TypeError);
    let deep: Record<string, unknown> = { sub: 'leaf' };
    for (let i = 0; i < 20; i += 1) deep = { sub: `n${i}`, act: deep };
    expect(() => parseAct(deep)).toThrow(TypeError);
  });
});
