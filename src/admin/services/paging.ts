import { z } from 'zod';

/**
 * Operators' listings come in pages by id: `after` is the previous page's `next` (its last
 * id), `limit` the page size. A full page says `next`; the page after it may be empty.
 */
export const pageQuerySchema = z.object({
  after: z.string().min(1).max(2048).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
export type PageQuery = z.output<typeof pageQuerySchema>;

export interface Page<T> {
  readonly items: T[];
  readonly next?: string;
}

export function pageOf<T>(items: T[], limit: number, idOf: (item: T) => string): Page<T> {
  const last = items.at(-1);
  return items.length >= limit && last !== undefined ? { items, next: idOf(last) } : { items };
}

/** Every record a lister holds, page after page: for operations that must reach all of them. */
export async function everyPage<T>(listPage: (after: string | undefined) => Promise<T[]>, idOf: (item: T) => string): Promise<T[]> {
  const all: T[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await listPage(after);
    all.push(...page);
    const last = page.at(-1);
    if (last === undefined) return all;
    after = idOf(last);
  }
}
