/**
 * Who asked for an administrative change: recorded in its audit event. The admin API's
 * actor is the authenticated client (and user, when a human holds the token) of the system
 * tenant; the CLI's is the operating-system user running it.
 */
export interface AdminActor {
  readonly via: 'api' | 'cli';
  /** The token's sub (API) or the OS user name (CLI). */
  readonly subject: string;
  /** The system tenant's client that holds the token (API only). */
  readonly clientId?: string;
}
