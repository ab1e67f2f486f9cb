// `npm run test:asan` (.ci/asan): the tests that drive the addon's C code, against its sanitizer build.
import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

export default defineConfig({
  test: {
    ...base.test,
    include: [
      'test/native/**/*.test.ts',
      'test/daemon/unix-link.test.ts',
      'test/mediators/dbus-*.test.ts',
      'test/mediators/wayland-*.test.ts',
    ],
    setupFiles: ['testkit/sanitizer-setup.ts'],
  },
});
