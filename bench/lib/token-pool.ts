/*
 * The revocation scenario's tokens, per target. A live revocation revokes a token nobody
 * revoked before (Castellan production: Redis tombstone, FerretDB delete, audit event); a
 * repeated one revokes a token again (a tombstone lookup). They are measured apart:
 *
 * - live: before each measurement the pool is topped up (not timed) to what the measurement
 *   can use, its previous measured rate × the duration with a margin, between a floor and a
 *   cap (issuing is also bounded in time by the caller); the measurement stops when the pool
 *   is used up, so every request in it revokes a live token.
 * - repeated: each request revokes one of the tokens the live measurements revoked.
 */

export interface PoolSizing {
  /** Rate assumed before the first measurement, requests/s. */
  initialRate: number;
  /** Seconds per measurement. */
  duration: number;
  /** Pool = rate × duration × margin. */
  margin: number;
  min: number;
  cap: number;
}

/** Tokens kept for repeated revocations (the latest). */
const REVOKED_KEPT = 10_000;

export class TokenPool {
  readonly #sizing: PoolSizing;
  #live: string[] = [];
  #next = 0;
  #revoked: string[] = [];
  #lastRate: number | undefined;
  /** Per measurement: pool size at its start; whether it used the pool up before its time. */
  readonly #sizes: number[] = [];
  #ranOut = 0;
  #measurements = 0;
  #topUpSeconds = 0;
  #beyondPool = 0;

  constructor(sizing: PoolSizing) {
    this.#sizing = sizing;
  }

  /** How many live tokens the next measurement should start with. */
  goal(): number {
    const { initialRate, duration, margin, min, cap } = this.#sizing;
    const rate = this.#lastRate ?? initialRate;
    return Math.min(cap, Math.max(min, Math.ceil(rate * duration * margin)));
  }

  /** Live tokens not handed out yet. */
  get remaining(): number {
    return this.#live.length - this.#next;
  }

  get revokedCount(): number {
    return this.#revoked.length;
  }

  /** Adds freshly issued tokens; `seconds` is how long issuing them took. */
  add(tokens: readonly string[], seconds: number): void {
    this.#live.push(...tokens);
    this.#topUpSeconds = Math.max(this.#topUpSeconds, seconds);
  }

  /** The next live token. Past the end (the load generator overshot), a revoked one, counted. */
  take(): string {
    const token = this.#live[this.#next];
    if (token !== undefined) {
      this.#next += 1;
      return token;
    }
    this.#beyondPool += 1;
    return this.pickRevoked();
  }

  /** A token revoked earlier, at random; '' before any. */
  pickRevoked(): string {
    return this.#revoked[Math.floor(Math.random() * this.#revoked.length)] ?? '';
  }

  /** Tokens revoked outside the live measurements (to have some before the first one). */
  addRevoked(tokens: readonly string[]): void {
    this.#revoked.push(...tokens);
    if (this.#revoked.length > REVOKED_KEPT) this.#revoked.splice(0, this.#revoked.length - REVOKED_KEPT);
  }

  /**
   * After a live measurement: its rate sizes the next pool; the tokens it handed out move to
   * the revoked list, except the last `inFlight` when it ended by time (they may have been
   * sent without an answer, so they may still be live).
   */
  settle(measurement: { rps: number; seconds: number }, startSize: number, duration: number, inFlight: number): void {
    this.#measurements += 1;
    this.#sizes.push(startSize);
    if (Number.isFinite(measurement.rps) && measurement.rps > 0) this.#lastRate = measurement.rps;
    const usedUp = this.remaining === 0;
    if (usedUp && measurement.seconds < duration * 0.98) this.#ranOut += 1;
    const used = this.#live.slice(0, this.#next);
    this.addRevoked(usedUp ? used : used.slice(0, Math.max(0, used.length - inFlight)));
    this.#live = this.#live.slice(this.#next);
    this.#next = 0;
  }

  /** One line: pool sizes, the longest top-up, how often a pool ran out before its time. */
  summary(name: string): string {
    const fmt = (n: number) => n.toLocaleString('en-US');
    const sizes = this.#sizes.length ? `${fmt(Math.min(...this.#sizes))}–${fmt(Math.max(...this.#sizes))}` : 'none';
    const beyond = this.#beyondPool ? `; ${fmt(this.#beyondPool)} live requests past the pool revoked an already revoked token` : '';
    return `${name}: live pools of ${sizes} tokens (topping up took ≤ ${this.#topUpSeconds.toFixed(1)} s), used up before the end of ${this.#ranOut} of ${this.#measurements} measurements (warm-up included)${beyond}; repeated: among ${fmt(this.#revoked.length)} revoked tokens.`;
  }
}
