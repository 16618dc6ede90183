import type { Command } from "commander";
import type { Io } from "./parse.js";

/** `fanwatch notifications list|redrive`: the notifier's queues and dead letters (docs/notifier.md). */
export function addNotificationsCommand(program: Command, io: Io): void {
  void io;
  program.command("notifications").description("list and redrive the notifier's dead letters (docs/notifier.md)");
}
