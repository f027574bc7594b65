// Lint rules from ../shared/STYLE.md §14: the ones that catch real bugs are errors.
import tseslint from "typescript-eslint";
import importX from "eslint-plugin-import-x";

export default tseslint.config(
  { ignores: ["dist/**", "dist-*/**", "node_modules/**", "src/gen/**", "**/*.mjs"] },
  {
    files: ["**/*.ts"],
    extends: [tseslint.configs.recommendedTypeChecked],
    plugins: { "import-x": importX },
    // Resolves "./x.js" to "./x.ts" as tsc does, so import-x/no-cycle sees every edge.
    settings: {
      "import-x/resolver": { typescript: { project: "./tsconfig.json" } },
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/extensions": [".ts", ".js"],
    },
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["test", "it", "describe", "suite", "before", "after", "beforeEach", "afterEach"] },
          ],
        },
      ],
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/explicit-module-boundary-types": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "import-x/no-cycle": "error",
      "max-lines-per-function": ["warn", { max: 70, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    // Tests may be long and use node:test's promise-returning helpers inline.
    files: ["test/**/*.ts", "bench/**/*.ts"],
    rules: {
      "max-lines-per-function": "off",
      "@typescript-eslint/explicit-module-boundary-types": "off",
    },
  },
  {
    // The raft core is a pure state machine: no I/O, no clocks, no randomness (STYLE.md §1).
    files: ["src/raft/core/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["node:*"], message: "the raft core does no I/O" }] }],
      "no-restricted-globals": [
        "error",
        { name: "setTimeout", message: "time is an input (tick)" },
        { name: "setInterval", message: "time is an input (tick)" },
        { name: "setImmediate", message: "time is an input (tick)" },
        { name: "process", message: "the raft core does no I/O" },
      ],
      "no-restricted-properties": [
        "error",
        { object: "Date", property: "now", message: "time is an input (tick)" },
        { object: "Math", property: "random", message: "randomness is injected" },
      ],
    },
  },
);
