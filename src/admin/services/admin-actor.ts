/**
 * Who asked for an administrative change: recorded in its audit event. The admin API's
 * actor is the authenticated client (and user, when a human holds the token) of the system
 * tenant; the CLI's is the operating-system user running it; `schedule` is Castellan's own
 * timer (scheduled key rotation), with subject naming the job.
 */
export interface AdminActor {
  readonly via: 'api' | 'cli' | 'schedule';
  /** The token's sub (API), the OS user name (CLI) or the job (schedule, e.g. "key-rotation"). */
  readonly subject: string;
  /** The system tenant's client that holds the token (API only). */
  readonly clientId?: string;
}
