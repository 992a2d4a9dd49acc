import type { BasicCredentials } from '../../src/http/basic-credentials.ts';

/**
 * Authorization headers and what oidc-provider 9 concludes from each
 * (lib/shared/client_auth.js): the credentials it authenticates with, or undefined where it
 * refuses the header with invalid_request. src/http/basic-credentials.test.ts checks the
 * decoder against this table; test/integration/basic-credentials.test.ts checks the table
 * against the provider itself.
 */
export interface BasicCredentialCase {
  name: string;
  header: string;
  expected: BasicCredentials | undefined;
  /**
   * False where HTTP itself changes the value on the way (leading and trailing whitespace is
   * not part of a field value, RFC 9110 §5.5): the provider never sees this header as written.
   */
  survivesTheWire?: false;
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
/** RFC 6749 §2.3.1 as a client is meant to build it. */
const basicOf = (id: string, secret: string) => `Basic ${b64(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`)}`;

/** Bytes whose standard base64 has both '+' and '/' (so its base64url form differs): "svc-b64url:?>?~". */
const PLUS_AND_SLASH = 'svc-b64url:?>?~';

export const BASIC_CREDENTIAL_CASES: readonly BasicCredentialCase[] = [
  { name: 'normal', header: basicOf('svc-normal', 'secret-1'), expected: { clientId: 'svc-normal', clientSecret: 'secret-1' } },
  {
    name: "percent-encoded ':', '+' and space in client_id and secret",
    header: basicOf('svc:a+b c', 'p:q+r s%'),
    expected: { clientId: 'svc:a+b c', clientSecret: 'p:q+r s%' },
  },
  {
    name: "form encoding: '+' is a space, lowercase hex and needlessly encoded letters decode",
    header: `Basic ${b64('svc%3a%61%2bb+c:p%3aq%2br+s%25')}`,
    expected: { clientId: 'svc:a+b c', clientSecret: 'p:q+r s%' },
  },
  {
    name: "the first ':' splits: a raw ':' in the secret is part of it",
    header: `Basic ${b64('svc-colon:a:b:')}`,
    expected: { clientId: 'svc-colon', clientSecret: 'a:b:' },
  },
  { name: "scheme in lowercase ('basic')", header: `basic ${b64('svc-lower:secret-2')}`, expected: { clientId: 'svc-lower', clientSecret: 'secret-2' } },
  { name: "scheme in uppercase ('BASIC')", header: `BASIC ${b64('svc-upper:secret-3')}`, expected: { clientId: 'svc-upper', clientSecret: 'secret-3' } },
  {
    name: 'base64 without its padding',
    header: `Basic ${b64('svc-unpadded:s').replace(/=+$/, '')}`,
    expected: { clientId: 'svc-unpadded', clientSecret: 's' },
  },
  { name: 'standard base64 with + and /', header: `Basic ${b64(PLUS_AND_SLASH)}`, expected: { clientId: 'svc-b64url', clientSecret: '?>?~' } },
  { name: 'base64url instead of base64', header: `Basic ${Buffer.from(PLUS_AND_SLASH).toString('base64url')}`, expected: undefined },
  { name: 'wrong padding', header: `Basic ${b64('svc-pad:secret')}=`, expected: undefined },
  { name: 'a base64 length no encoder makes (4n+1)', header: `Basic ${b64('svc-len:secr')}A`, expected: undefined },
  { name: 'colon missing', header: `Basic ${b64('svc-nocolon')}`, expected: undefined },
  { name: 'empty client_id', header: `Basic ${b64(':secret')}`, expected: undefined },
  { name: 'empty secret', header: `Basic ${b64('svc-empty:')}`, expected: undefined },
  { name: 'bad percent-encoding in client_id', header: `Basic ${b64('svc%zz:secret')}`, expected: undefined },
  { name: 'truncated percent-encoding in the secret', header: `Basic ${b64('svc-trunc:%E0%A4%A')}`, expected: undefined },
  { name: 'percent-encoded non-ASCII client_id (not VSCHAR)', header: basicOf('svc-ü', 'secret'), expected: undefined },
  { name: 'raw UTF-8 in the decoded header', header: `Basic ${b64('svc-ü:secret')}`, expected: undefined },
  { name: 'a control character in the secret', header: basicOf('svc-ctl', 'a\nb'), expected: undefined },
  { name: 'base64 of bytes that are not UTF-8', header: `Basic ${Buffer.from([0x73, 0xff, 0x3a, 0x73]).toString('base64')}`, expected: undefined },
  { name: 'another scheme (Bearer)', header: `Bearer ${b64('svc-normal:secret-1')}`, expected: undefined },
  { name: 'another scheme (Digest)', header: 'Digest username="svc-normal"', expected: undefined },
  { name: 'two spaces after the scheme', header: `Basic  ${b64('svc-normal:secret-1')}`, expected: undefined },
  { name: 'a tab after the scheme', header: `Basic\t${b64('svc-normal:secret-1')}`, expected: undefined },
  { name: 'a space inside the token', header: `Basic ${b64('svc-normal:secret-1')} x`, expected: undefined },
  { name: 'the scheme alone', header: 'Basic', expected: undefined },
  { name: 'non-base64 garbage', header: 'Basic !!not*base64!!', expected: undefined },
  { name: 'an empty header', header: '', expected: undefined },
  { name: 'a trailing space', header: `Basic ${b64('svc-normal:secret-1')} `, expected: undefined, survivesTheWire: false },
  { name: 'a leading space', header: ` Basic ${b64('svc-normal:secret-1')}`, expected: undefined, survivesTheWire: false },
];
