import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** One known failure: the suite (describe) and scenario (test) names, and why. */
const expectedFailuresSchema = z.object({
  failures: z.array(z.object({ suite: z.string().min(1), scenario: z.string().min(1), reason: z.string().min(10) })),
});

export type ExpectedFailure = z.infer<typeof expectedFailuresSchema>['failures'][number];

/** conformance/expected-failures.json, validated. */
export function loadExpectedFailures(): ExpectedFailure[] {
  return expectedFailuresSchema.parse(
    JSON.parse(readFileSync(new URL('../expected-failures.json', import.meta.url), 'utf8')),
  ).failures;
}
