import { describe, it, type TestContext } from 'vitest';
import { loadExpectedFailures } from './expected-failures.ts';

const EXPECTED = loadExpectedFailures();

/** The listed reason when this check is a known failure. */
export function expectedFailure(suite: string, scenario: string): string | undefined {
  return EXPECTED.find((entry) => entry.suite === suite && entry.scenario === scenario)?.reason;
}

export type ScenarioBody = (context: TestContext) => Promise<void> | void;
export type Scenario = (name: string, body: ScenarioBody, timeoutMs?: number) => void;

/**
 * A conformance suite: one describe whose tests are its checks (REPORT.md has one row each).
 * A check listed in conformance/expected-failures.json runs as `it.fails`: its failure is
 * recorded with the listed reason, and its unexpected success fails the run. A check that
 * does not apply calls `context.skip('why')`; the note goes into the report.
 */
export function conformanceSuite(suite: string, define: (scenario: Scenario) => void): void {
  describe(suite, () => {
    define((name, body, timeoutMs) => {
      const reason = expectedFailure(suite, name);
      if (reason) it.fails(name, body, timeoutMs);
      else it(name, body, timeoutMs);
    });
  });
}
