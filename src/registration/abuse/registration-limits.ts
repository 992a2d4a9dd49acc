import { isIPv4, isIPv6 } from 'node:net';
import { RegistrationRefusedError, TooManyRequestsError } from '../../errors/errors.ts';
import type { RegistrationSettings } from '../../tenants/tenant-settings.ts';
import type { RegistrationAbuseStore } from './abuse-store.ts';

/** The eight 16-bit groups of an IPv6 address, or undefined if it is not one. */
function ipv6Groups(address: string): number[] | undefined {
  const bare = address.split('%')[0] ?? '';
  if (!isIPv6(bare)) return undefined;
  let text = bare;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * What one registration source is: an IPv4 address, or an IPv6 /64 (one subscriber's
 * network, RFC 6177): counting single IPv6 addresses would let anyone with a /64 rotate
 * through 2^64 of them. IPv4-mapped IPv6 addresses count as their IPv4 address.
 */
export function registrationSource(ip: string): string {
  if (isIPv4(ip)) return ip;
  const groups = ipv6Groups(ip);
  if (groups === undefined) return ip || 'unknown';
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join('.');
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/**
 * Counts a registration request against the tenant's `perIpPerHour`; over it, 429 with
 * Retry-After (RFC 6585 §4). Every POST to the registration endpoint counts, idempotent
 * re-registrations and refused ones included: each costs a store write or a check.
 */
export async function enforceRegistrationRate(
  abuse: RegistrationAbuseStore,
  tenant: string,
  ip: string,
  limits: RegistrationSettings['limits'],
): Promise<void> {
  const verdict = await abuse.countRegistration(tenant, registrationSource(ip), limits.perIpPerHour);
  if (!verdict.allowed) {
    throw new TooManyRequestsError(
      `too many client registrations from this address; at most ${limits.perIpPerHour} per hour`,
      verdict.retryAfterSeconds,
    );
  }
}

/**
 * Admits a new self-registered client under the tenant's maximum, or refuses the
 * registration: 403 access_denied, like a policy refusal. Not 429: waiting does not help
 * (only deletions and the sweeper of unused clients free places), and not
 * invalid_client_metadata: nothing is wrong with the metadata.
 */
export async function admitSelfRegisteredClient(
  abuse: RegistrationAbuseStore,
  tenant: string,
  clientId: string,
  limits: RegistrationSettings['limits'],
  fingerprint: string | undefined,
): Promise<void> {
  const admitted = await abuse.admitClient(tenant, clientId, {
    max: limits.maxClients,
    now: Date.now(),
    ...(fingerprint === undefined ? {} : { fingerprint }),
  });
  if (!admitted) {
    throw new RegistrationRefusedError(`this tenant holds its maximum of ${limits.maxClients} self-registered clients`);
  }
}
