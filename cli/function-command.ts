import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { drainOnSignals } from "../templates/node22-ts/signals.js";
import type { FunctionModule } from "../templates/node22-ts/types.js";
import { addSettingsHelp, integer, type Io } from "./parse.js";
import { REPO_ROOT } from "./paths.js";
import { FanwatchError, UsageError } from "../lib/errors.js";
import { SITE_SETTINGS, TOPIC_SETTINGS } from "../lib/infra/config.js";
import { LOG_SETTINGS } from "../lib/infra/log-level.js";
import { SECRET_SETTINGS, setCommandDefault } from "../lib/infra/settings.js";
import { MQTT_SETTINGS } from "../lib/mqtt/settings.js";
import { HEALTH_SETTINGS } from "../functions/health/config.js";
import { HEALTH_POLICY_SETTINGS } from "../functions/health/policy.js";
import { PREDICT_SETTINGS } from "../functions/predict/config.js";
import { DEFAULT_MODEL_DIR, SCORE_SETTINGS } from "../functions/score/config.js";

let functions: readonly string[] = [];

/**
 * The functions `fanwatch function` runs: those of the repository's stack.yml, in its order. Read
 * only when this command is about to run (its action or its help: the preSubcommand hook below),
 * with the YAML parser loaded then: they cost about 30 ms that every other command would pay.
 */
async function readStackFunctions(): Promise<void> {
  const { parseStack } = await import("../runtime/gateway/stack.js");
  functions = Object.keys(parseStack(readFileSync(new URL("stack.yml", REPO_ROOT), "utf8")).functions);
}

function stackFunctions(): readonly string[] {
  return functions;
}

export function addFunctionCommand(program: Command, io: Io): void {
  program.hook("preSubcommand", async (_program, subcommand) => {
    if (subcommand.name() === "function") await readStackFunctions();
  });
  const command = program
    .command("function")
    .description("run one function of stack.yml as its container does (our node22-ts template's server)")
    .argument("<name>", "function to run")
    // The names in this command's help, from stack.yml once the help is shown (stackFunctions).
    .configureHelp({
      ...program.configureHelp(),
      commandDescription: (cmd) => `${cmd.description()}: ${stackFunctions().join(", ")}`,
      argumentDescription: (argument) => `${argument.description} (${stackFunctions().join(", ")})`,
    })
    .option("--port <port>", "port to listen on (default: $http_port or 3000)", integer("--port"))
    .option("--host <address>", "address to listen on (default 0.0.0.0, as in the container)")
    .option(
      "--stop-with-stdin",
      "stop, as on SIGTERM, when standard input closes (the local gateway runs its functions so, and they end with it even when it is killed)",
    );
  addSettingsHelp(
    command,
    [
      { title: "score reads", settings: SCORE_SETTINGS },
      { title: "predict reads", settings: PREDICT_SETTINGS },
      { title: "health reads", settings: HEALTH_SETTINGS },
      { title: "and health's rules (docs/health.md)", settings: HEALTH_POLICY_SETTINGS },
      { title: "health stamps every transition with", settings: SITE_SETTINGS },
      { title: "predict and health publish to the broker", settings: MQTT_SETTINGS },
      { title: "on the topics", settings: TOPIC_SETTINGS },
      { title: "their secrets", settings: SECRET_SETTINGS },
      { title: "and they log", settings: LOG_SETTINGS },
    ],
    [
      "Each function reads its settings from the environment, as in its container (stack.yml sets them there);",
      `here MODEL_DIR defaults to the repository's ${DEFAULT_MODEL_DIR}. The template's server reads its own:`,
      "http_port, MAX_JSON_SIZE, MAX_RAW_SIZE, RAW_BODY (docs/template.md).",
    ],
  );
  command.action(async (name: string, opts: { port?: number; host?: string; stopWithStdin?: boolean }) => {
    const FUNCTIONS = stackFunctions();
    if (!FUNCTIONS.includes(name)) {
      throw new UsageError(`unknown function "${name}"; the functions are ${FUNCTIONS.join(", ")}`);
    }
    // In the container MODEL_DIR is relative to /home/app; here, to the repository.
    setCommandDefault(SCORE_SETTINGS.MODEL_DIR, fileURLToPath(new URL(DEFAULT_MODEL_DIR, REPO_ROOT)));
    const module = new URL(`../functions/${name}/handler.js`, import.meta.url);
    if (!existsSync(module))
      throw new FanwatchError("FANWATCH_NOT_BUILT", `${fileURLToPath(module)} is missing: run npm run build`);
    // The server and its dependencies are loaded by this command alone, not at every CLI start.
    const [fn, { serverOptionsFromEnv, startFunctionServer }] = await Promise.all([
      import(module.href) as Promise<FunctionModule>,
      import("../templates/node22-ts/server.js"),
    ]);
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
