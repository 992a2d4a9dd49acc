/**
 * HTTP Basic client credentials (RFC 6749 §2.3.1: client_id and client_secret each
 * form-urlencoded, joined by ':', then base64), decoded exactly as oidc-provider 9 decodes
 * them (lib/shared/client_auth.js, authenticateClient). Castellan's own layers in front of
 * or around the provider (endpoint rate limits, the unknown-client secret comparison) use
 * this one decoder, so they never take a header for a different client than the provider
 * authenticates, nor for any client where the provider refuses the header as malformed.
 */
export interface BasicCredentials {
  clientId: string;
  clientSecret: string;
}

/** Standard base64 (not base64url): padded to a multiple of 4, or not padded at all (client_auth.js isValidBase64). */
const BASE64 = /^([A-Za-z0-9+/]*)(={0,2})$/;

function isValidBase64(text: string): boolean {
  const match = BASE64.exec(text);
  const data = match?.[1];
  if (!match || !data) return false;
  const padding = match[2] ?? '';
  const remainder = data.length % 4;
  if (!padding) return remainder !== 1;
  return (data.length + padding.length) % 4 === 0 && padding.length === 4 - remainder;
}

/**
 * oidc-provider's VSCHAR (RFC 6749 Appendix A: %x20-7E), which client_id and client_secret
 * must be made of once decoded; a non-ASCII or control character, or the replacement
 * character left by base64 that is not UTF-8, makes the header invalid.
 */
const NOT_VSCHAR = /[^\x20-\x7E]/;

/** application/x-www-form-urlencoded: '+' is a space; a bad percent-escape makes the header invalid. */
function formDecoded(part: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(part.replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
  return NOT_VSCHAR.test(decoded) ? undefined : decoded;
}

/**
 * The client credentials of an Authorization header, or undefined wherever oidc-provider
 * would refuse the header (invalid_request): another scheme, anything but exactly one space
 * between scheme and token (the scheme itself in any case), base64url or mis-padded base64,
 * no ':', a part that is not properly form-encoded, an empty client_id (names no client) or
 * an empty client_secret. The first ':' separates the two: a ':' inside client_id is
 * percent-encoded, one inside the secret need not be. Never throws.
 */
export function decodeBasicCredentials(authorization: string | undefined): BasicCredentials | undefined {
  if (authorization === undefined) return undefined;
  const parts = authorization.split(' ');
  const token = parts[1];
  if (parts.length !== 2 || parts[0]?.toLowerCase() !== 'basic' || token === undefined || !isValidBase64(token)) return undefined;
  const basic = Buffer.from(token, 'base64').toString('utf8');
  const colon = basic.indexOf(':');
  if (colon === -1) return undefined;
  const clientId = formDecoded(basic.slice(0, colon));
  const clientSecret = formDecoded(basic.slice(colon + 1));
  if (!clientId || !clientSecret) return undefined;
  return { clientId, clientSecret };
}
