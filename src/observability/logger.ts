import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * JSON logs (pino). Secrets never reach a log: known sensitive fields are redacted wherever
 * they appear in a logged object. `destination`: stdout by default; tests capture the lines.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'castellan' },
    redact: {
      paths: ['password', '*.password', 'client_secret', '*.client_secret', 'authorization', '*.authorization', 'headers.authorization', 'headers.cookie'],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
