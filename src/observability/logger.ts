import pino, { type Logger } from 'pino';

/**
 * JSON logs (pino). Secrets never reach a log: known sensitive fields are redacted wherever
 * they appear in a logged object.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'castellan' },
    redact: {
      paths: ['password', '*.password', 'client_secret', '*.client_secret', 'authorization', '*.authorization', 'headers.authorization', 'headers.cookie'],
      censor: '[redacted]',
    },
  });
}
