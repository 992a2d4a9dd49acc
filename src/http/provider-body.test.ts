import { stringify, parse } from 'node:querystring';
import { describe, expect, it } from 'vitest';
import { formAsProviderBody } from './provider-body.ts';

describe('formAsProviderBody', () => {
  it('keeps repeated parameters as arrays, as oidc-provider parses a body itself', () => {
    const text = 'grant_type=client_credentials&resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example&scope=x+y';
    const body = formAsProviderBody(new URLSearchParams(text));
    expect({ ...body }).toEqual({ grant_type: 'client_credentials', resource: ['https://a.example', 'https://b.example'], scope: 'x y' });
    // oidc-provider re-encodes a handed-over body and parses it again (lib/shared/selective_body.js).
    expect({ ...parse(stringify(body)) }).toEqual({ ...parse(text) });
  });

  it('keeps a duplicated single-valued parameter visible, so oidc-provider can refuse it', () => {
    const body = formAsProviderBody(new URLSearchParams('grant_type=a&grant_type=b'));
    expect(body.grant_type).toEqual(['a', 'b']);
  });

  it('treats __proto__ as a plain parameter', () => {
    const body = formAsProviderBody(new URLSearchParams('__proto__=x&__proto__=y&a=1'));
    expect(Object.keys(body)).toEqual(['__proto__', 'a']);
    expect(body['__proto__']).toEqual(['x', 'y']);
    expect(({} as Record<string, unknown>).a).toBeUndefined();
  });
});
