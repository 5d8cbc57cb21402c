// Lint (`npm run lint`, part of `npm test`): typescript-eslint's type-checked recommended rules, plus
// rules that catch real bugs. TypeScript files are checked with the types of tsconfig.json; the
// plain-JS scripts (bin/, scripts/*.js) without types.
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/', 'demo-dist/', 'bench/dist/', 'node_modules/', 'test-results/', 'playwright-report/', '.test-output/', '.kitedb/', '.scratch/', 'scratch/'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
      globals: { ...globals.browser, ...globals.node }
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      // A closure may read the variable before its one assignment: `let` is right there.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/no-floating-promises': 'error',
      // Off: `async` without `await` implements a Promise-returning interface (the memory store,
      // test doubles) and turns a throw into a rejection, as callers of that interface expect.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }]
    }
  },
  {
    files: ['**/*.js'],
    extends: [tseslint.configs.disableTypeChecked]
  },
  {
    // The library logs through src/log.ts, which callers can silence; the relay CLI prints.
    files: ['src/**'],
    ignores: ['src/log.ts', 'src/relay/cli.ts'],
    rules: { 'no-console': 'error' }
  }
)
