import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { ID_JAG_TYP, scopeList } from './id-jag.ts';

/** What an accepted ID-JAG asserts (draft §3), checked and typed. */
export interface IdJagClaims {
  iss: string;
  sub: string;
  clientId: string;
  jti: string;
  iat: number;
  exp: number;
  /** The resource indicators it names; undefined when it names none. */
  resources: string[] | undefined;
  /** Its scopes; empty when it carries none. */
  scopes: string[];
}

export type IdJagRejection =
  | 'MALFORMED'
  | 'WRONG_TYPE'
  | 'UNTRUSTED_ISSUER'
  | 'BAD_SIGNATURE'
  | 'WRONG_AUDIENCE'
  | 'EXPIRED'
  | 'NOT_YET_VALID'
  | 'LIFETIME_TOO_LONG'
  | 'MISSING_CLAIM';

/** Why an assertion was refused: a stable code for callers, a description for the client. */
export class IdJagRejectedError extends Error {
  readonly code: IdJagRejection;
  constructor(code: IdJagRejection, description: string) {
    super(description);
    this.name = 'IdJagRejectedError';
    this.code = code;
  }
}

export interface IdJagVerifierOptions {
  /** This tenant's issuer: the only audience accepted (draft §4.4.1). */
  audience: string;
  trustedIssuers: readonly { issuer: string; jwks: JSONWebKeySet }[];
  clockSkewSeconds: number;
  maxLifetimeSeconds: number;
}

// Asymmetric only: a shared-secret ID-JAG could be minted by anyone who can verify it.
const ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
const REQUIRED_CLAIMS = ['iss', 'sub', 'aud', 'client_id', 'jti', 'exp', 'iat'];

const reject = (code: IdJagRejection, description: string): never => {
  throw new IdJagRejectedError(code, description);
};

function nonEmptyString(payload: JWTPayload, claim: string): string {
  const value = payload[claim];
  if (typeof value !== 'string' || value === '') return reject('MISSING_CLAIM', `the assertion's ${claim} claim must be a non-empty string`);
  return value;
}

function resourcesOf(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && value) return [value];
  if (Array.isArray(value) && value.length && value.every((v) => typeof v === 'string' && v)) return value as string[];
  return reject('MALFORMED', 'the assertion\'s resource claim must be a URI or an array of URIs');
}

function rejectionOf(err: unknown): IdJagRejectedError {
  if (err instanceof IdJagRejectedError) return err;
  if (err instanceof joseErrors.JWTExpired) {
    return err.claim === 'iat'
      ? new IdJagRejectedError('LIFETIME_TOO_LONG', 'the assertion was issued too long ago')
      : new IdJagRejectedError('EXPIRED', 'the assertion has expired');
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return new IdJagRejectedError('MISSING_CLAIM', `the assertion has no ${err.claim} claim`);
    switch (err.claim) {
      case 'aud': return new IdJagRejectedError('WRONG_AUDIENCE', 'the assertion is not for this authorization server (aud)');
      case 'typ': return new IdJagRejectedError('WRONG_TYPE', `the assertion is not an ID-JAG (typ must be ${ID_JAG_TYP})`);
      case 'nbf':
      case 'iat': return new IdJagRejectedError('NOT_YET_VALID', 'the assertion is not valid yet (nbf or iat in the future)');
      default: return new IdJagRejectedError('MISSING_CLAIM', `the assertion's ${err.claim} claim is missing or invalid`);
    }
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed || err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JOSEAlgNotAllowed) {
    return new IdJagRejectedError('BAD_SIGNATURE', 'the assertion\'s signature does not verify with its issuer\'s keys');
  }
  return new IdJagRejectedError('MALFORMED', 'the assertion is not a well-formed signed JWT');
}

/**
 * Checks an ID-JAG presented at the jwt-bearer grant: RFC 7521 §5.2 / RFC 7523 §3 and the
 * draft's rules (typ, aud = this issuer, exp/iat within skew, a bounded lifetime so a used
 * jti need only be remembered that long). Signature against the keys of the issuer it names,
 * and only if that issuer is trusted. Client binding, resource and scope are the grant's.
 */
export function createIdJagVerifier(options: IdJagVerifierOptions): (assertion: string) => Promise<IdJagClaims> {
  // An AS must not redeem ID-JAGs it issued itself (draft §7.3, cross-domain use only).
  const trusted = new Map(options.trustedIssuers
    .filter((t) => t.issuer !== options.audience)
    .map((t) => [t.issuer, createLocalJWKSet(t.jwks)] as const));

  return async (assertion) => {
    try {
      let header: ReturnType<typeof decodeProtectedHeader>;
      let unverified: JWTPayload;
      try {
        header = decodeProtectedHeader(assertion);
        unverified = decodeJwt(assertion);
      } catch {
        return reject('MALFORMED', 'the assertion is not a well-formed signed JWT');
      }
      if (typeof header.typ !== 'string' || header.typ.toLowerCase().replace(/^application\//, '') !== ID_JAG_TYP) {
        reject('WRONG_TYPE', `the assertion is not an ID-JAG (typ must be ${ID_JAG_TYP})`);
      }
      const iss = unverified.iss;
      const keys = typeof iss === 'string' ? trusted.get(iss) : undefined;
      if (typeof iss !== 'string' || !keys) return reject('UNTRUSTED_ISSUER', 'the assertion\'s issuer is not trusted here');

      const { payload } = await jwtVerify(assertion, keys, {
        issuer: iss,
        audience: options.audience,
        typ: ID_JAG_TYP,
        algorithms: ALGORITHMS,
        clockTolerance: options.clockSkewSeconds,
        maxTokenAge: options.maxLifetimeSeconds,
        requiredClaims: REQUIRED_CLAIMS,
      });
      const exp = payload.exp as number;
      const iat = payload.iat as number;
      if (exp - iat > options.maxLifetimeSeconds) {
        reject('LIFETIME_TOO_LONG', `the assertion lives longer than ${options.maxLifetimeSeconds} seconds`);
      }
      return {
        iss,
        sub: nonEmptyString(payload, 'sub'),
        clientId: nonEmptyString(payload, 'client_id'),
        jti: nonEmptyString(payload, 'jti'),
        iat,
        exp,
        resources: resourcesOf(payload.resource),
        scopes: payload.scope === undefined ? [] : typeof payload.scope === 'string' ? scopeList(payload.scope) : reject('MALFORMED', 'the assertion\'s scope claim must be a string'),
      };
    } catch (err) {
      throw rejectionOf(err);
    }
  };
}
