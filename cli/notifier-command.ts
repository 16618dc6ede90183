import type { Command } from "commander";
import type { Io } from "./parse.js";

/** `fanwatch notifier`: health's event stream → Alertmanager and signed webhooks (docs/notifier.md). */
export function addNotifierCommand(program: Command, io: Io): void {
  void io;
  program.command("notifier").description("send health's transitions to Alertmanager and webhooks (docs/notifier.md)");
}
