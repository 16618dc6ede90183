import { cp, mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { readStack } from "../../runtime/gateway/stack.js";

/**
 * Writes the build context of one function exactly as `faas-cli build --shrinkwrap` does
 * (faas-cli reads templates only from ./template/<lang>/): ./template/<lang>/ copied to build/<fn>/, the handler
 * folder's entries into build/<fn>/function/ (entries named build and template skipped), then each
 * `configuration.copy` path to build/<fn>/function/<path>.
 */
export async function shrinkwrap(repo: string, stackFile: string, fn: string, buildDir: string): Promise<string> {
  const stack = await readStack(join(repo, stackFile));
  const spec = stack.functions[fn];
  if (spec === undefined) throw new Error(`${stackFile} has no function ${fn}`);
  const context = join(buildDir, fn);
  await rm(context, { recursive: true, force: true });
  await mkdir(context, { recursive: true });
  await cp(join(repo, "template", spec.lang), context, { recursive: true });
  const functionDir = join(context, "function");
  await mkdir(functionDir, { recursive: true });
  for (const entry of await readdir(join(repo, spec.handler))) {
    if (entry === "build" || entry === "template") continue;
    await cp(join(repo, spec.handler, entry), join(functionDir, entry), { recursive: true });
  }
  for (const path of stack.configuration.copy) {
    await cp(join(repo, path), join(functionDir, path), { recursive: true });
  }
  return context;
}
