import { BlockList, isIP } from 'node:net';
import { hostMatcher } from './host-names.ts';

/**
 * Which IP addresses the server may connect to when it fetches a document a client named
 * (CIMD draft §"Server Side Request Forgery"): a client_id URL is attacker-chosen, so without
 * this check it reaches the cloud metadata service, the admin ports on loopback and
 * everything else inside the network the server runs in.
 */
export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'shared'
  | 'cloud-metadata'
  | 'multicast'
  | 'unspecified'
  | 'documentation'
  | 'reserved'
  | 'invalid';

/**
 * Never allowed, whatever a tenant's allowlist says: a metadata service hands out cloud
 * credentials (the classic SSRF prize), and nothing serves https on an unspecified or
 * multicast address.
 */
const NEVER_ALLOWED: ReadonlySet<AddressClass> = new Set(['cloud-metadata', 'multicast', 'unspecified', 'invalid']);

type Ranges = ReadonlyArray<readonly [AddressClass, string, number]>;

/** Checked in order, so a more specific range comes before the range that holds it. */
const IPV4_RANGES: Ranges = [
  ['unspecified', '0.0.0.0', 32],
  // AWS, GCP, Azure, OCI instance metadata; AWS ECS task metadata; Alibaba; Azure WireServer
  // (a public address that answers only from inside Azure).
  ['cloud-metadata', '169.254.169.254', 32],
  ['cloud-metadata', '169.254.170.2', 32],
  ['cloud-metadata', '100.100.100.200', 32],
  ['cloud-metadata', '168.63.129.16', 32],
  ['reserved', '0.0.0.0', 8], // "this network" (RFC 791)
  ['private', '10.0.0.0', 8], // RFC 1918
  ['shared', '100.64.0.0', 10], // carrier-grade NAT (RFC 6598)
  ['loopback', '127.0.0.0', 8],
  ['link-local', '169.254.0.0', 16], // RFC 3927
  ['private', '172.16.0.0', 12],
  ['reserved', '192.0.0.0', 24], // IETF protocol assignments (RFC 6890)
  ['documentation', '192.0.2.0', 24], // TEST-NET-1 (RFC 5737)
  ['reserved', '192.31.196.0', 24], // AS112
  ['reserved', '192.52.193.0', 24], // AMT
  ['reserved', '192.88.99.0', 24], // 6to4 relay anycast, deprecated
  ['private', '192.168.0.0', 16],
  ['reserved', '192.175.48.0', 24], // AS112 direct delegation
  ['reserved', '198.18.0.0', 15], // benchmarking (RFC 2544)
  ['documentation', '198.51.100.0', 24], // TEST-NET-2
  ['documentation', '203.0.113.0', 24], // TEST-NET-3
  ['multicast', '224.0.0.0', 4],
  ['reserved', '240.0.0.0', 4], // future use, and the broadcast address
];

const IPV6_RANGES: Ranges = [
  ['cloud-metadata', 'fd00:ec2::254', 128], // AWS instance metadata over IPv6
  ['reserved', '::', 96], // IPv4-compatible, deprecated (:: and ::1 are decided before)
  ['private', '64:ff9b:1::', 48], // local-use NAT64 (RFC 8215)
  ['reserved', '100::', 64], // discard-only (RFC 6666)
  ['reserved', '2001::', 23], // IETF protocol assignments: Teredo, benchmarking, ORCHID
  ['documentation', '2001:db8::', 32], // RFC 3849
  ['reserved', '2002::', 16], // 6to4: reaches any IPv4 address through a relay
  ['documentation', '3fff::', 20], // RFC 9637
  ['private', 'fc00::', 7], // unique local (RFC 4193)
  ['link-local', 'fe80::', 10],
  ['private', 'fec0::', 10], // site-local, deprecated
  ['multicast', 'ff00::', 8],
];

function compile(ranges: Ranges, family: 'ipv4' | 'ipv6'): ReadonlyArray<readonly [AddressClass, BlockList]> {
  return ranges.map(([kind, network, prefix]) => {
    const list = new BlockList();
    list.addSubnet(network, prefix, family);
    return [kind, list] as const;
  });
}

const V4 = compile(IPV4_RANGES, 'ipv4');
const V6 = compile(IPV6_RANGES, 'ipv6');
/** Only 2000::/3 is allocated for global unicast; everything else is not on the Internet. */
const GLOBAL_UNICAST_V6 = new BlockList();
GLOBAL_UNICAST_V6.addSubnet('2000::', 3, 'ipv6');

/** The eight 16-bit groups of a valid IPv6 address (an embedded dotted quad included). */
function ipv6Groups(address: string): number[] {
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const [a = 0, b = 0, c = 0, d = 0] = text.slice(lastColon + 1).split('.').map(Number);
    tail.push((a << 8) | b, (c << 8) | d);
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head = '', rest] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - tail.length - left.length - right.length;
  const zeros = rest === undefined ? [] : new Array<string>(missing).fill('0');
  return [...[...left, ...zeros, ...right].map((group) => Number.parseInt(group, 16)), ...tail];
}

/** The IPv4 address carried in the last 32 bits of an IPv6 address. */
function embeddedIpv4(groups: readonly number[]): string {
  const high = groups[6] ?? 0;
  const low = groups[7] ?? 0;
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/**
 * The IPv4 address an IPv6 address stands for, if any: IPv4-mapped (::ffff:0:0/96, which the
 * socket layer connects to as IPv4) and the well-known NAT64 prefix (64:ff9b::/96, which a
 * NAT64 gateway translates to that IPv4 address). Both are judged as that IPv4 address, or
 * ::ffff:169.254.169.254 would walk past every IPv4 rule.
 */
function ipv4Behind(groups: readonly number[]): string | undefined {
  const [g0, g1, g2, g3, g4, g5] = groups;
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff) return embeddedIpv4(groups);
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return embeddedIpv4(groups);
  return undefined;
}

/** An address in the form the checks use: IPv4 for mapped addresses, no IPv6 zone. */
export function canonicalAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  const bare = address.trim().replace(/%.*$/su, '').toLowerCase();
  const version = isIP(bare);
  if (version === 4) return { address: bare, family: 'ipv4' };
  if (version !== 6) return undefined;
  const v4 = ipv4Behind(ipv6Groups(bare));
  return v4 === undefined ? { address: bare, family: 'ipv6' } : { address: v4, family: 'ipv4' };
}

/** What kind of address this is; only `public` may be fetched without an allowlist entry. */
export function classifyAddress(address: string): AddressClass {
  const canonical = canonicalAddress(address);
  if (!canonical) return 'invalid';
  if (canonical.family === 'ipv4') {
    return V4.find(([, list]) => list.check(canonical.address, 'ipv4'))?.[0] ?? 'public';
  }
  const groups = ipv6Groups(canonical.address);
  if (groups.every((g) => g === 0)) return 'unspecified';
  if (groups.every((g, i) => g === (i === 7 ? 1 : 0))) return 'loopback';
  const kind = V6.find(([, list]) => list.check(canonical.address, 'ipv6'))?.[0];
  if (kind) return kind;
  return GLOBAL_UNICAST_V6.check(canonical.address, 'ipv6') ? 'public' : 'reserved';
}

/** A privateNetworkAllowlist entry: a host name (or `*.suffix`), an IP address, or a CIDR range. */
export function isValidNetworkAllowlistEntry(entry: string): boolean {
  return parseEntry(entry) !== undefined;
}

type Entry = { kind: 'host'; value: string } | { kind: 'network'; family: 'ipv4' | 'ipv6'; address: string; prefix: number };

function parseEntry(raw: string): Entry | undefined {
  const entry = raw.trim();
  if (entry === '') return undefined;
  const slash = entry.indexOf('/');
  if (slash === -1) {
    const canonical = canonicalAddress(entry.replace(/^\[(.*)\]$/su, '$1'));
    if (canonical) return { kind: 'network', ...canonical, prefix: canonical.family === 'ipv4' ? 32 : 128 };
    return /^(\*\.)?[a-z0-9_.-]+$/iu.test(entry) && !entry.includes('..') ? { kind: 'host', value: entry } : undefined;
  }
  const address = entry.slice(0, slash);
  const prefixText = entry.slice(slash + 1);
  if (!/^\d{1,3}$/u.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const version = isIP(address);
  if (version === 4 && prefix <= 32) return { kind: 'network', family: 'ipv4', address, prefix };
  if (version === 6 && prefix <= 128) return { kind: 'network', family: 'ipv6', address: address.toLowerCase(), prefix };
  return undefined;
}

export interface AddressDecision {
  allow: boolean;
  kind: AddressClass;
  /** Why a non-public address was allowed or refused, for logs and errors. */
  reason: string;
}

export interface AddressPolicy {
  /** May the server connect to `address`, which `host` resolved to? */
  allowAddress(host: string, address: string): boolean;
  decide(host: string, address: string): AddressDecision;
}

/**
 * Public addresses are allowed; the others only through a tenant's privateNetworkAllowlist
 * (host names, which allow whatever they resolve to, or IP addresses and CIDR ranges), and
 * cloud metadata, multicast and unspecified addresses never. Throws TypeError on an entry
 * that is none of these, so a typo does not silently allow nothing (or too much).
 */
export function createAddressPolicy(privateNetworkAllowlist: readonly string[] = []): AddressPolicy {
  const hosts: string[] = [];
  const networks = new BlockList();
  for (const raw of privateNetworkAllowlist) {
    const entry = parseEntry(raw);
    if (!entry) throw new TypeError(`privateNetworkAllowlist: not a host name, IP address or CIDR range: ${JSON.stringify(raw)}`);
    if (entry.kind === 'host') hosts.push(entry.value);
    else if (entry.prefix === (entry.family === 'ipv4' ? 32 : 128)) networks.addAddress(entry.address, entry.family);
    else networks.addSubnet(entry.address, entry.prefix, entry.family);
  }
  const hostAllowed = hostMatcher(hosts);

  function decide(host: string, address: string): AddressDecision {
    const kind = classifyAddress(address);
    if (kind === 'public') return { allow: true, kind, reason: 'public address' };
    if (NEVER_ALLOWED.has(kind)) return { allow: false, kind, reason: `${kind} address ${address} is never fetched` };
    const canonical = canonicalAddress(address);
    if (canonical && networks.check(canonical.address, canonical.family)) {
      return { allow: true, kind, reason: `${kind} address ${address} is in privateNetworkAllowlist` };
    }
    if (hostAllowed(host)) return { allow: true, kind, reason: `host ${host} is in privateNetworkAllowlist` };
    return { allow: false, kind, reason: `${host} resolves to ${kind} address ${address}` };
  }

  return { decide, allowAddress: (host, address) => decide(host, address).allow };
}
