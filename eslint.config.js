// Lint: typescript-eslint with type information, so that promises nobody awaits and switches that
// miss a case are caught. Formatting is Prettier's (npm run format), not a lint rule.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  // templates/node22-ts/index.ts imports the handler faas-cli copies in (./function/handler.js):
  // it type-checks only inside a function's build, where esbuild bundles it.
  {
    ignores: [
      "dist/",
      "build/",
      "node_modules/",
      "templates/*/node_modules/",
      "template/",
      "templates/node22-ts/index.ts",
      "**/*.js",
      "**/*.mjs",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe() and it() return promises that the runner itself awaits.
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["describe", "it", "test", "suite"] },
          ],
        },
      ],
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
      "@typescript-eslint/await-thenable": "error",
      // Services implement `protected async onStart/onDrain/onClose(): Promise<void>` by contract,
      // whether or not a given implementation awaits anything; an async method without an await is
      // deliberate here, not a bug.
      "@typescript-eslint/require-await": "off",
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" },
      ],
    },
  },
);
