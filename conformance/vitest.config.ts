import { defineConfig } from 'vitest/config';

// The conformance run: independent clients and test suites against Castellan on the
// production stores (FerretDB + Redis, started by the same global setup as the tests).
export default defineConfig({
  test: {
    include: ['conformance/suites/**/*.test.ts'],
    globalSetup: ['test/setup/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    reporters: ['default', './test/setup/summary-reporter.ts'],
  },
});
