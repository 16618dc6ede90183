import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { drainOnSignals, serverOptionsFromEnv, startFunctionServer } from "../templates/node22-ts/server.js";
import type { FunctionModule } from "../templates/node22-ts/types.js";
import { integer, type Io } from "./parse.js";
import { REPO_ROOT } from "./paths.js";
import { FanwatchError, UsageError } from "../lib/errors.js";
import { environmentHelp } from "../lib/infra/settings.js";
import { HEALTH_SETTINGS } from "../functions/health/config.js";
import { PREDICT_SETTINGS } from "../functions/predict/config.js";
import { DEFAULT_MODEL_DIR, SCORE_SETTINGS } from "../functions/score/config.js";

export const FUNCTIONS = ["score", "predict", "health"] as const;

export function addFunctionCommand(program: Command, io: Io): void {
  program
    .command("function")
    .description(`run one function as its container does (our node22-ts template's server): ${FUNCTIONS.join(", ")}`)
    .argument("<name>", `function to run (${FUNCTIONS.join(", ")})`)
    .option("--port <port>", "port to listen on (default: $http_port or 3000)", integer("--port"))
    .option("--host <address>", "address to listen on (default 0.0.0.0, as in the container)")
    .option(
      "--stop-with-stdin",
      "stop, as on SIGTERM, when standard input closes (the local gateway runs its functions so, and they end with it even when it is killed)",
    )
    .addHelpText(
      "after",
      [
        "",
        "Each function reads its settings from the environment, as in its container (stack.yml sets them there):",
        "score:",
        ...environmentHelp(SCORE_SETTINGS),
        "predict (and MQTT_URL, MQTT_USERNAME, MQTT_PASSWORD, the topics):",
        ...environmentHelp(PREDICT_SETTINGS),
        "health (and MQTT_URL, MQTT_USERNAME, MQTT_PASSWORD, the topics):",
        ...environmentHelp(HEALTH_SETTINGS),
      ].join("\n"),
    )
    .action(async (name: string, opts: { port?: number; host?: string; stopWithStdin?: boolean }) => {
      if (!(FUNCTIONS as readonly string[]).includes(name)) {
        throw new UsageError(`unknown function "${name}"; the functions are ${FUNCTIONS.join(", ")}`);
      }
      // In the container MODEL_DIR is relative to /home/app; here, to the repository.
      process.env.MODEL_DIR ??= fileURLToPath(new URL(DEFAULT_MODEL_DIR, REPO_ROOT));
      const module = new URL(`../functions/${name}/handler.js`, import.meta.url);
      if (!existsSync(module))
        throw new FanwatchError("FANWATCH_NOT_BUILT", `${fileURLToPath(module)} is missing: run npm run build`);
      const fn = (await import(module.href)) as FunctionModule;
      const options = serverOptionsFromEnv();
      const server = await startFunctionServer(fn, {
        ...options,
        name,
        ...(opts.port === undefined ? {} : { port: opts.port }),
        ...(opts.host === undefined ? {} : { host: opts.host }),
      });
      if (process.send === undefined) {
        io.err(`${name} is listening on http://${opts.host ?? "127.0.0.1"}:${server.port} (Ctrl-C to stop)`);
      } else {
        // Started by the local gateway, which gave it an IPC channel: the gateway learns it is
        // ready by this message (the line above is for a person at a terminal). The channel has
        // no other use: closing it lets the process end when its server does.
        process.send({ event: "ready", port: server.port }, () => {
          if (process.connected) process.disconnect(); // not when the gateway has gone already
        });
      }
      drainOnSignals(server);
      if (opts.stopWithStdin === true) {
        // The write end is the runner's: it closes when the runner exits, SIGKILL included.
        process.stdin.once("end", () => process.kill(process.pid, "SIGTERM"));
        process.stdin.resume();
      }
      await new Promise(() => {}); // serve until a signal ends the process
    });
}
