import { decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import { localKeySet } from '../keys/local-key-set.ts';
import { InvalidSoftwareStatementError, UnapprovedSoftwareStatementError } from '../errors/errors.ts';
import type { RegistrationSettings } from '../tenants/tenant-settings.ts';

/** JWT claims that describe the statement itself, not the client. */
const ENVELOPE_CLAIMS = new Set(['iss', 'sub', 'aud', 'iat', 'exp', 'nbf', 'jti']);

/**
 * Verifies a software statement (RFC 7591 §2.3) against the tenant's trusted publishers and
 * returns the client metadata it asserts; those claims override the request's members.
 */
export async function verifySoftwareStatement(
  statement: unknown,
  publishers: RegistrationSettings['trustedPublishers'],
): Promise<Record<string, unknown>> {
  if (typeof statement !== 'string' || statement.split('.').length !== 3) {
    throw new InvalidSoftwareStatementError('software_statement must be a signed JWT');
  }
  let issuer: unknown;
  try {
    issuer = decodeJwt(statement).iss;
  } catch {
    throw new InvalidSoftwareStatementError('software_statement is not a readable JWT');
  }
  const publisher = publishers.find((p) => p.issuer === issuer);
  if (!publisher) throw new UnapprovedSoftwareStatementError('software_statement is not from a trusted publisher');
  try {
    const { payload } = await jwtVerify(statement, localKeySet(publisher.jwks as JSONWebKeySet), {
      issuer: publisher.issuer,
      // Symmetric algorithms would make the publisher's key a shared secret; refuse them.
      algorithms: ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'],
      clockTolerance: 30,
    });
    return Object.fromEntries(Object.entries(payload).filter(([claim]) => !ENVELOPE_CLAIMS.has(claim)));
  } catch {
    throw new InvalidSoftwareStatementError('software_statement signature or claims are invalid');
  }
}
