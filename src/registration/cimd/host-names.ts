import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

/**
 * One spelling per host, so that a list entry and a URL's host compare equal however either
 * was written: lower case, IDNs as punycode, IPv6 without brackets and in the WHATWG URL's
 * canonical form, no trailing dot. Without the last step `https://evil.example./` would slip
 * past a denylist entry `evil.example`.
 */
export function normalizeHost(host: string): string {
  let name = host.trim().toLowerCase();
  if (name.startsWith('[') && name.endsWith(']')) name = name.slice(1, -1);
  if (isIP(name) === 6) return URL.parse(`https://[${name}]/`)?.hostname.slice(1, -1) ?? name;
  if (isIP(name) === 4) return name;
  while (name.endsWith('.')) name = name.slice(0, -1);
  const ascii = domainToASCII(name);
  return ascii === '' ? name : ascii;
}

/**
 * A host list as a predicate. An entry is a host name or IP address matched exactly, or
 * `*.example.com`, which matches every name below example.com (a.example.com,
 * a.b.example.com) but not example.com itself.
 */
export function hostMatcher(entries: readonly string[]): (host: string) => boolean {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const entry of entries) {
    const trimmed = entry.trim();
    if (trimmed.startsWith('*.')) suffixes.push(`.${normalizeHost(trimmed.slice(2))}`);
    else exact.add(normalizeHost(trimmed));
  }
  return (host) => {
    const name = normalizeHost(host);
    return exact.has(name) || suffixes.some((suffix) => name.endsWith(suffix) && name.length > suffix.length);
  };
}
