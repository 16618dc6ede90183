import type { Logger } from "pino";

// Apart from server.ts, so that a command that only needs the signal handling (the CLI's services)
// loads none of the server's dependencies.

/**
 * Drains `service` on SIGTERM or SIGINT (what the watchdog, Kubernetes and Ctrl-C send), then exits:
 * 0 once it stopped cleanly, 1 if stopping failed or the service ended on its own with an error.
 * The function server, the connector and the writer share it. A second SIGTERM changes nothing:
 * faasd signals every process of the container and the watchdog forwards its own, so a function
 * behind it gets two. A second Ctrl-C closes at once.
 */
export function drainOnSignals(
  service: { drain(): Promise<void>; close(): Promise<void>; readonly closed: Promise<Error | undefined> },
  log?: Logger,
): void {
  let draining = false;
  const exit = (code: number) => process.exit(code);
  const stop = (signal: NodeJS.Signals) => {
    if (draining) {
      if (signal === "SIGINT") void service.close().finally(() => exit(130));
      return;
    }
    draining = true;
    log?.info({ event: "signal", signal }, `received ${signal}, draining`);
    service.drain().then(
      () => exit(0),
      (error: unknown) => {
        log?.error({ err: error }, "drain failed");
        exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // A service that ended by itself, with an error, is not waited on: the platform restarts the process.
  void service.closed.then((error) => {
    if (error === undefined || draining) return;
    log?.error({ err: error }, "stopped on its own");
    exit(1);
  });
}
