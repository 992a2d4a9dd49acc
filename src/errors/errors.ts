/**
 * Castellan's own errors. Each carries a stable `code` for callers and tests, and the OAuth
 * error it becomes on the wire; src/http/error-response.ts is the one place that renders
 * them. (oidc-provider renders its own errors inside its routes.)
 */
export abstract class CastellanError extends Error {
  abstract readonly code: string;
  abstract readonly status: number;
  abstract readonly oauthError: string;
  readonly headers: Readonly<Record<string, string>> = {};
}

export class TenantNotFoundError extends CastellanError {
  readonly code = 'TENANT_NOT_FOUND';
  readonly status = 404;
  readonly oauthError = 'invalid_request';
  constructor(tenant: string) {
    super(`unknown tenant "${tenant.slice(0, 64)}"`);
    this.name = 'TenantNotFoundError';
  }
}

export class NotFoundError extends CastellanError {
  readonly code = 'NOT_FOUND';
  readonly status = 404;
  readonly oauthError = 'invalid_request';
  constructor(message = 'no such endpoint') {
    super(message);
    this.name = 'NotFoundError';
  }
}

export class PayloadTooLargeError extends CastellanError {
  readonly code = 'PAYLOAD_TOO_LARGE';
  readonly status = 413;
  readonly oauthError = 'invalid_request';
  constructor(limitBytes: number) {
    super(`request body exceeds the limit of ${limitBytes} bytes`);
    this.name = 'PayloadTooLargeError';
  }
}

export class UnsupportedMediaTypeError extends CastellanError {
  readonly code = 'UNSUPPORTED_MEDIA_TYPE';
  readonly status = 415;
  readonly oauthError = 'invalid_request';
  constructor(expected: string) {
    super(`request body must be ${expected}`);
    this.name = 'UnsupportedMediaTypeError';
  }
}

export class InvalidRequestError extends CastellanError {
  readonly code = 'INVALID_REQUEST';
  readonly status = 400;
  readonly oauthError = 'invalid_request';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRequestError';
  }
}

export class MethodNotAllowedError extends CastellanError {
  readonly code = 'METHOD_NOT_ALLOWED';
  readonly status = 405;
  readonly oauthError = 'invalid_request';
  override readonly headers: Readonly<Record<string, string>>;
  constructor(allowed: readonly string[]) {
    super(`method not allowed; use ${allowed.join(' or ')}`);
    this.name = 'MethodNotAllowedError';
    this.headers = { Allow: allowed.join(', ') };
  }
}

export class ServiceUnavailableError extends CastellanError {
  readonly code = 'SERVICE_UNAVAILABLE';
  readonly status = 503;
  readonly oauthError = 'temporarily_unavailable';
  override readonly headers: Readonly<Record<string, string>> = { 'Retry-After': '5' };
  constructor(message = 'the server cannot reach its storage; try again shortly') {
    super(message);
    this.name = 'ServiceUnavailableError';
  }
}
