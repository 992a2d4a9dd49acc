import { createRemoteJWKSet, customFetch, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { InvalidTokenError, VerifierUnavailableError, type InvalidTokenCode } from './errors.ts';
import { clockSchema, fetchSchema, httpUrlSchema, parseOptions } from './options.ts';
import { resourceSchema } from './resource-uri.ts';
import { parseScopeClaim } from './scopes.ts';
import { parseActClaim, type AuthInfo, type AuthInfoExtra, type TokenVerifier } from './token-verifier.ts';

/** Asymmetric JWS algorithms only: an HMAC or `none` token can never be checked against a JWKS. */
export const JWT_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA', 'Ed25519'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** RFC 9068 §2.2: the claims every JWT access token carries. */
const REQUIRED_CLAIMS = ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'];

const jwtVerifierOptionsSchema = z.object({
  /** The authorization server's issuer, exactly as in its metadata (a Castellan tenant: `<base>/t/<tenant>`). */
  issuer: httpUrlSchema,
  /** This server's canonical resource URI; a token's `aud` must contain it (RFC 9068 §4, RFC 8707). */
  audience: resourceSchema,
  /** The issuer's JWKS; defaults to Castellan's `<issuer>/jwks` (give the metadata's `jwks_uri` for another AS). */
  jwksUri: httpUrlSchema.optional(),
  /** Allow-list of signing algorithms (RFC 8725 §3.1). Castellan signs access tokens with ES256 by default. */
  algorithms: z.array(z.enum(JWT_ALGORITHMS)).min(1).default(['ES256', 'RS256']),
  /** Skew allowed on exp and nbf between our clock and the issuer's. */
  clockToleranceSeconds: z.number().int().min(0).max(300).default(30),
  /**
   * A token signed by a key we have not seen makes jose refetch the JWKS (so a rotation is
   * picked up at once), but at most once per this many seconds, so a stream of tokens with
   * made-up kids cannot turn us into a JWKS flooder (jose's cooldownDuration).
   */
  jwksCooldownSeconds: z.number().min(0).max(3600).default(30),
  /** Keys are refetched when older than this even without an unknown kid (jose's cacheMaxAge). */
  jwksCacheMaxAgeSeconds: z.number().min(1).max(86_400).default(600),
  jwksTimeoutMs: z.number().int().min(1).max(60_000).default(5000),
  /** The clock exp/nbf are judged by; Date.now unless given (tests move it instead of waiting). */
  now: clockSchema.optional(),
  /** The fetch used for the JWKS (proxies, custom CAs). */
  fetch: fetchSchema.optional(),
});

export type JwtVerifierOptions = z.input<typeof jwtVerifierOptionsSchema>;

/** jose's error for a claim check, mapped to ours; the message is ours too, never jose's (no echoing token content). */
function claimFailure(error: errors.JWTClaimValidationFailed): InvalidTokenError {
  if (error.reason === 'missing') return new InvalidTokenError('ERR_TOKEN_CLAIMS', `missing claim: ${error.claim}`);
  const byClaim: Record<string, [InvalidTokenCode, string]> = {
    typ: ['ERR_TOKEN_TYPE', 'not an access token (typ must be at+jwt)'],
    iss: ['ERR_TOKEN_ISSUER', 'issued by another authorization server'],
    aud: ['ERR_TOKEN_AUDIENCE', 'issued for another resource'],
    nbf: ['ERR_TOKEN_NOT_YET_VALID', 'not valid yet'],
  };
  const [code, message] = byClaim[error.claim] ?? ['ERR_TOKEN_CLAIMS', `invalid claim: ${error.claim}`];
  return new InvalidTokenError(code, message);
}

/** Turns whatever jwtVerify threw into one of the kit's errors. */
function toVerifierError(error: unknown): Error {
  if (error instanceof InvalidTokenError || error instanceof VerifierUnavailableError) return error;
  if (error instanceof errors.JWTExpired) return new InvalidTokenError('ERR_TOKEN_EXPIRED', 'expired');
  if (error instanceof errors.JWTClaimValidationFailed) return claimFailure(error);
  if (error instanceof errors.JOSEAlgNotAllowed) return new InvalidTokenError('ERR_TOKEN_ALGORITHM', 'signing algorithm not allowed');
  if (error instanceof errors.JWSSignatureVerificationFailed) return new InvalidTokenError('ERR_TOKEN_SIGNATURE', 'signature does not verify');
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return new InvalidTokenError('ERR_TOKEN_UNKNOWN_KEY', 'signed by an unknown key');
  }
  if (error instanceof errors.JOSEError) return new InvalidTokenError('ERR_TOKEN_MALFORMED', 'not a well-formed JWT', { cause: error });
  // Anything else is a bug of ours or of a dependency: let the adapter answer 500 and log it.
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * jose's remote JWKS (never a cache of our own), wrapped so that failing to *get* the keys
 * (network, timeout, non-200, invalid JSON) is told apart from a token no key matches: the
 * first is our outage (503), the second the token's fault (401).
 */
function remoteKeys(jwksUri: string, options: z.output<typeof jwtVerifierOptionsSchema>): JWTVerifyGetKey {
  const customFetchImpl = options.fetch;
  const keys = createRemoteJWKSet(new URL(jwksUri), {
    cooldownDuration: options.jwksCooldownSeconds * 1000,
    cacheMaxAge: options.jwksCacheMaxAgeSeconds * 1000,
    timeoutDuration: options.jwksTimeoutMs,
    ...(customFetchImpl ? { [customFetch]: (url: string, init: RequestInit) => customFetchImpl(url, init) } : {}),
  });
  return async (header, token) => {
    try {
      return await keys(header, token);
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys || error instanceof errors.JOSENotSupported) {
        throw error;
      }
      throw new VerifierUnavailableError('the authorization server keys (JWKS) could not be fetched', { cause: error });
    }
  };
}

function stringClaim(payload: JWTPayload, claim: string): string {
  const value = payload[claim];
  if (typeof value !== 'string' || value === '') throw new InvalidTokenError('ERR_TOKEN_CLAIMS', `${claim} must be a string`);
  return value;
}

/**
 * Verifies RFC 9068 JWT access tokens locally: signature against the issuer's JWKS (allow-listed
 * algorithms), `typ` at+jwt, `iss`, `aud` containing this resource, exp/nbf with a small skew,
 * and the RFC 9068 claims. Revocation is not seen (Castellan does not store JWT access tokens):
 * a JWT is good until it expires, so keep their lifetime short (a resource's accessTokenTtl)
 * or use opaque tokens with createIntrospectionVerifier where revocation must bite at once.
 */
export function createJwtVerifier(input: JwtVerifierOptions): TokenVerifier {
  const options = parseOptions(jwtVerifierOptionsSchema, input, 'createJwtVerifier');
  const jwksUri = options.jwksUri ?? `${options.issuer.replace(/\/+$/, '')}/jwks`;
  const keys = remoteKeys(jwksUri, options);
  const resource = new URL(options.audience);

  return {
    async verifyAccessToken(token: string): Promise<AuthInfo> {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          issuer: options.issuer,
          audience: options.audience,
          algorithms: [...options.algorithms],
          // RFC 9068 §4: at+jwt or application/at+jwt (jose compares media types case-insensitively, prefix optional).
          typ: 'at+jwt',
          clockTolerance: options.clockToleranceSeconds,
          requiredClaims: REQUIRED_CLAIMS,
          ...(options.now ? { currentDate: new Date(options.now()) } : {}),
        }));
      } catch (error) {
        throw toVerifierError(error);
      }
      // A sender-constrained token (DPoP, mTLS: RFC 9449 / 8705) presented as a plain bearer
      // token is refused: we cannot check its proof, and accepting it would undo the binding.
      if (payload.cnf !== undefined) throw new InvalidTokenError('ERR_TOKEN_UNSUPPORTED', 'sender-constrained tokens are not accepted as bearer tokens');
      const clientId = stringClaim(payload, 'client_id');
      const act = parseActClaim(payload.act);
      const extra: AuthInfoExtra = {
        tokenFormat: 'jwt',
        sub: stringClaim(payload, 'sub'),
        iss: payload.iss,
        ...(act ? { act } : {}),
        claims: { ...payload },
      };
      return {
        token,
        clientId,
        scopes: parseScopeClaim(payload.scope),
        ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp } : {}),
        resource,
        extra,
      };
    },
  };
}
