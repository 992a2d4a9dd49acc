/**
 * `promise`'s value, or `fallback` if it rejects or has not settled within `ms`: a bound on
 * how long a request, a scrape or a shutdown waits for something it can do without. The
 * promise itself goes on (a late rejection is handled here); the timer is always cleared.
 */
export function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([promise.catch(() => fallback), timeout]).finally(() => clearTimeout(timer));
}
