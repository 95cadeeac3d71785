// ESLint for the extension's TypeScript (`npm test` runs it): the recommended JavaScript and
// typescript-eslint rules, and the type-aware ones that catch promises nobody awaits.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['build/', 'dist/', 'node_modules/', 'target/', 'test-results/'] },
  {
    files: ['www/src/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommended],
    languageOptions: {
      parserOptions: {
        project: ['www/tsconfig.json', 'www/tsconfig.test.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // A promise is awaited, returned, or marked `void` on purpose.
      // (node's `test()` returns a promise the runner itself awaits.)
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it'] }],
      }],
      // Type-only imports stay out of the bundles (content scripts must not pull in the wasm).
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      eqeqeq: 'error',
    },
  },
);
