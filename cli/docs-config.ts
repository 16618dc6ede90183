import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { REPO_ROOT } from "./paths.js";
import { renderSettingsRegions, settingsDocuments, settingsRegions } from "./settings-registry.js";

/**
 * `npm run docs:config`: rewrites every settings table in README.md and docs/ from the registry
 * (cli/settings-registry.ts), so that a default, a help line or a new setting is written once, in
 * its module. test/unit/config.test.ts fails while a table differs from what this would write.
 */
const root = fileURLToPath(REPO_ROOT);
let changed = 0;
for (const doc of settingsDocuments(root)) {
  const file = join(root, doc);
  const text = readFileSync(file, "utf8");
  const rendered = renderSettingsRegions(text);
  if (rendered === text) continue;
  writeFileSync(file, rendered);
  changed++;
  process.stdout.write(`${doc}: settings tables ${settingsRegions(text).join(", ")} rewritten\n`);
}
process.stdout.write(changed === 0 ? "the settings tables are up to date\n" : `${changed} documents rewritten\n`);
