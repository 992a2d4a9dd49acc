import { z } from 'zod';

/** Requests per window; 0 turns that counter off. */
const points = (fallback: number) => z.number().int().min(0).max(10_000_000).default(fallback);
const windowSeconds = z.number().int().min(1).max(86_400).default(60);

/**
 * An endpoint that authenticates clients: requests pay from their address's bucket, except
 * those a client answered for with its credential and got a 2xx for, which pay from the
 * client's own bucket instead (src/http/rate-limit.ts).
 */
const clientEndpointLimit = (perIp: number, perClient: number) => z.object({
  perIp: points(perIp),
  perClient: points(perClient),
  windowSeconds,
}).prefault({});

const addressLimit = (perIp: number) => z.object({ perIp: points(perIp), windowSeconds }).prefault({});

/**
 * A tenant's request rate limits per endpoint. Defaults are meant for production: high
 * enough that a busy resource server introspecting with its credential, or an office behind
 * one NAT address, is not refused, low enough that one address cannot flood an endpoint.
 */
export const rateLimitsSchema = z.object({
  enabled: z.boolean().default(true),
  token: clientEndpointLimit(300, 6_000),
  introspection: clientEndpointLimit(600, 60_000),
  revocation: clientEndpointLimit(300, 6_000),
  deviceAuthorization: clientEndpointLimit(60, 600),
  /** Every registration request, RFC 7592 management included; registration.limits.perIpPerHour stays the quota of new clients. */
  registration: addressLimit(60),
  /** Password sign-ins (the login step and the account page), on top of the login throttle's lockouts. */
  login: addressLimit(60),
}).prefault({});

export type RateLimitSettings = z.output<typeof rateLimitsSchema>;
export type RateLimitedEndpoint = Exclude<keyof RateLimitSettings, 'enabled'>;
