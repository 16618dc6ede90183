#!/usr/bin/env node
// The CLI is written in TypeScript and compiled to dist/ by `npm install` (the `prepare` script).
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  console.error("fanwatch: dist/ is missing. Run `npm install` (or `npm run build`) in the repository first.");
  process.exit(1);
}
// A reader that stops early (`fanwatch --help | head`) ends the output, not with a stack trace.
process.stdout.on("error", (error) => {
  if (error.code !== "EPIPE") throw error;
  process.exit(process.exitCode ?? 0);
});
const { run } = await import(entry.href);
process.exitCode = await run(process.argv.slice(2));
