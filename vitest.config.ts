import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The native addon and the namespace tests run best in separate processes.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    tags: [
      {
        name: 'http-corpus',
        description:
          'one test per case of the HTTP smuggling corpus (test/corpus/http): the same cases run through the codec ' +
          'and through the rest mediator, and the CI tally counts them once as well (.ci/tally.js)',
      },
    ],
  },
});
