import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseStack } from "../../runtime/gateway/stack.js";
import { parseDockerfile, parseEnv } from "./dockerfile.js";
import { REPO_ROOT } from "./paths.js";

/**
 * A function's environment as its image has it under OpenFaaS: the template's ship stage ENV
 * (the watchdog's settings), then stack.yml's environment for `fn`.
 */
export function imageEnv(fn: string): Record<string, string> {
  const dockerfile = parseDockerfile(readFileSync(join(REPO_ROOT, "templates/node22-ts/Dockerfile"), "utf8"));
  const env: Record<string, string> = {};
  let ship = false;
  for (const { op, args } of dockerfile) {
    if (op === "FROM") ship = / AS ship$/i.test(args);
    else if (ship && op === "ENV") Object.assign(env, parseEnv(args));
  }
  const stack = parseStack(readFileSync(join(REPO_ROOT, "stack.yml"), "utf8"), {});
  return { ...env, ...(stack.functions[fn]?.environment ?? {}) };
}
