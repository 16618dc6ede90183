import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { z } from "zod";
import { exitOutcome } from "../lib/errors.js";
import { addBrokerAuthCommand } from "./broker-auth-command.js";
import { addConnectorCommand } from "./connector-command.js";
import { addDeadLettersCommand } from "./deadletters-command.js";
import { addFansCommand } from "./fans-command.js";
import { addFunctionCommand } from "./function-command.js";
import { addGatewayCommand } from "./gateway-command.js";
import { addInfluxSetupCommand } from "./influx-setup-command.js";
import { addInfluxWriterCommand } from "./influx-writer-command.js";
import { addModelCommands } from "./model-commands.js";
import { addModelRegistryCommand } from "./model-registry-command.js";
import { addAutoPromoteCommand } from "./model-auto-promote.js";
import { addNatsCommand } from "./nats-command.js";
import { addNotificationsCommand } from "./notifications-command.js";
import { addNotifierCommand } from "./notifier-command.js";
import { addPageCommand } from "./page-command.js";
import { processIo, type Io } from "./parse.js";
import { addReleaseCommand } from "./release-command.js";
import { REPO_ROOT } from "./paths.js";
import { addSimulateCommand } from "./simulate-command.js";
import { addStartCommand } from "./start-command.js";

export function buildProgram(io: Io): Command {
  const program = new Command("fanwatch")
    .description("Predictive maintenance for turbine fans at the edge: OpenFaaS functions, model tools and runners.")
    .version(packageVersion())
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });
  addStartCommand(program, io);
  addSimulateCommand(program, io);
  addModelCommands(program, io);
  addAutoPromoteCommand(addModelRegistryCommand(program, io), io);
  addFunctionCommand(program, io);
  addConnectorCommand(program, io);
  addInfluxWriterCommand(program, io);
  addInfluxSetupCommand(program, io);
  addGatewayCommand(program, io);
  addDeadLettersCommand(program, io);
  addNotifierCommand(program, io);
  addNotificationsCommand(program, io);
  addPageCommand(program, io);
  addNatsCommand(program, io);
  addFansCommand(program, io);
  addBrokerAuthCommand(program, io);
  addReleaseCommand(program, io);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** The version in package.json: what `fanwatch --version` says however it was started (npm or not). */
function packageVersion(): string {
  const text = readFileSync(new URL("package.json", REPO_ROOT), "utf8");
  return z.object({ version: z.string() }).parse(JSON.parse(text)).version;
}

/**
 * Runs the CLI and returns the exit code: 0 success, 1 failure, 2 usage error (commander's own,
 * a flag, argument or setting with an impossible value). A known error (docs/errors.md) is one
 * line, `fanwatch: <message> [<code>]`; any other error is a bug and keeps its stack.
 */
export async function run(argv: string[], io: Io = processIo()): Promise<number> {
  const program = buildProgram(io);
  if (argv.length === 0) {
    program.outputHelp();
    return 2;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end in a CommanderError with exit code 0.
      return error.exitCode === 0 ? 0 : 2;
    }
    // The code is what a script matches on; the message may be reworded (docs/errors.md).
    const { exitCode, line } = exitOutcome(error);
    io.err(`fanwatch: ${line}`);
    return exitCode;
  }
}
