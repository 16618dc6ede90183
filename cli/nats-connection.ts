import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { ConfigError } from "../lib/errors.js";
import { readSettingsFrom } from "../lib/infra/settings.js";
import { redactUrl } from "../lib/mqtt/settings.js";
import { NOTIFIER_SETTINGS } from "../notifier/config.js";

/** Where NATS is, for the commands that read it: the notifier's NATS_URL and --nats (credentials go in the URL). */
export const NATS_URL_SETTINGS = { NATS_URL: NOTIFIER_SETTINGS.NATS_URL };

export interface NatsAddress {
  url: string;
  /** The setting or flag it came from, for messages. */
  from: string;
  /** Without credentials. */
  shown: string;
}

/** The NATS a command is to use; `why` tells the user what it needs NATS for when none is set. */
export function natsAddress(given: { NATS_URL?: string | undefined }, why: string): NatsAddress {
  const { values, from } = readSettingsFrom(NATS_URL_SETTINGS, undefined, given);
  if (values.NATS_URL === undefined) throw new ConfigError(`NATS_URL is not set (or --nats): ${why}`);
  return { url: values.NATS_URL, from: from.NATS_URL ?? "NATS_URL", shown: redactUrl(values.NATS_URL) };
}

export interface NatsSession {
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** The server's version, for summaries. */
  server: string;
}

export interface CommandConnection {
  /** The client name the server shows. */
  name: string;
  /** For each JetStream request. */
  timeoutMs: number;
  /** The command's own error for NATS being away (each command has its exit code and code). */
  unavailable: (message: string, cause: unknown) => Error;
}

/**
 * Connects once, without reconnecting (a command says NATS is away rather than waiting), runs
 * `work`, closes.
 */
export async function withNats(
  where: NatsAddress,
  connection: CommandConnection,
  work: (nats: NatsSession) => Promise<void>,
): Promise<void> {
  const [{ connect }, { jetstream, jetstreamManager }] = await Promise.all([
    import("@nats-io/transport-node"),
    import("@nats-io/jetstream"),
  ]);
  const at = `${where.shown} (${where.from})`;
  const nc = await connect({ servers: where.url, timeout: 5_000, reconnect: false, name: connection.name }).catch(
    (error: unknown) => {
      throw connection.unavailable(`cannot reach NATS at ${at}: ${(error as Error).message}`, error);
    },
  );
  try {
    const jsm = await jetstreamManager(nc, { timeout: connection.timeoutMs }).catch((error: unknown) => {
      throw connection.unavailable(`NATS at ${at} has no JetStream: ${(error as Error).message}`, error);
    });
    await work({ js: jetstream(nc, { timeout: connection.timeoutMs }), jsm, server: nc.info?.version ?? "unknown" });
  } finally {
    await nc.close();
  }
}
