// Container entry point: esbuild bundles this file, the server and function/handler.ts into one file.
// The server listens first and the handler module loads after, so that the watchdog's requests are
// refused only while Node itself starts (they wait for the module's init() instead).
import { readFileSync } from "node:fs";
import { serverOptionsFromEnv, startFunctionServer } from "./server.js";
import { drainOnSignals } from "./signals.js";

const server = await startFunctionServer(import("./function/handler.js"), {
  ...serverOptionsFromEnv(),
  name: functionName(),
});
drainOnSignals(server);

/**
 * The function's name for logs and metrics: OPENFAAS_NAME where the platform sets it (of-watchdog
 * reads it too), else the name build.mjs wrote into package.json from the handler's own.
 */
function functionName(): string {
  if (process.env.OPENFAAS_NAME) return process.env.OPENFAAS_NAME;
  const pkg = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")) as { name?: unknown };
  return typeof pkg.name === "string" && pkg.name !== "" ? pkg.name : "function";
}
