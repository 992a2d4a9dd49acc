import { describe, expect, it } from 'vitest';
import { BASIC_CREDENTIAL_CASES } from '../../test/support/basic-credential-cases.ts';
import { decodeBasicCredentials } from './basic-credentials.ts';

// What oidc-provider concludes from each header is checked against the provider itself in
// test/integration/basic-credentials.test.ts; here the decoder is checked against that table.
describe('decodeBasicCredentials', () => {
  it.each(BASIC_CREDENTIAL_CASES.map((c) => [c.name, c] as const))('%s', (_name, { header, expected }) => {
    expect(decodeBasicCredentials(header)).toEqual(expected);
  });

  it('reads no header as no credentials', () => {
    expect(decodeBasicCredentials(undefined)).toBeUndefined();
  });

  it('never throws, whatever the header', () => {
    const samples = ['%', '%%:%', ':', '::', '=', '====', 'A', 'AA==', '\u0000', '\uD800', '+/+/', 'Og==', 'JTo='];
    for (const token of samples) {
      for (const header of [`Basic ${token}`, `Basic ${Buffer.from(token).toString('base64')}`, token]) {
        expect(() => decodeBasicCredentials(header)).not.toThrow();
      }
    }
    // 'Og==' is ':' and 'JTo=' is '%:': neither names a client.
    expect(decodeBasicCredentials('Basic Og==')).toBeUndefined();
    expect(decodeBasicCredentials('Basic JTo=')).toBeUndefined();
  });
});
