import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { HEALTH_SETTINGS } from "../functions/health/config.js";
import { openFanRegistry } from "../lib/registry/nats-registry.js";
import type { Command } from "commander";
import { z } from "zod";
import { ConfigError } from "../lib/errors.js";
import { readTopics } from "../lib/infra/config.js";
import { createLogger } from "../lib/infra/log.js";
import { defineSettings, readSettings } from "../lib/infra/settings.js";
import { CONTROL_USER } from "../lib/mqtt/broker-auth.js";
import {
  buildBrokerAuth,
  copyBrokerAuth,
  hasBrokerAuth,
  readServiceUsers,
  writeBrokerAuth,
} from "../lib/mqtt/broker-auth-files.js";
import type { FanRegistry } from "../lib/registry/registry.js";
import { NATS_URL_SETTINGS, natsAddress } from "./nats-connection.js";
import { addSettingFlags, addSettingsHelp, type Io } from "./parse.js";

const onOff = z
  .enum(["true", "false"], { error: (issue) => `"${String(issue.input)}" is not true or false` })
  .transform((v) => v === "true");

export const BROKER_AUTH_SETTINGS = defineSettings({
  NATS_URL: { ...NATS_URL_SETTINGS.NATS_URL, help: "the NATS server (JetStream) holding the device registry" },
  ALLOW_UNBOUND_FANS: {
    env: ["ALLOW_UNBOUND_FANS"],
    flag: "--allow-unbound-fans <true|false>",
    help: "let each fan also publish on the bare telemetry topic (fan/messages), during a migration to fan/messages/<id>; off in deploy/k3s",
    default: false,
    schema: onOff.default(false),
  },
  MQTT_URL: {
    env: ["MQTT_URL"],
    flag: "--broker <url>",
    help: `with --watch: the broker to bind new fans' client ids on, as user ${CONTROL_USER} (its password: the users folder's file ${CONTROL_USER})`,
    default: "mqtt://127.0.0.1:1883",
    schema: z.string().default("mqtt://127.0.0.1:1883"),
  },
});

/** broker-auth --watch's /healthz, beside the broker in its pod. */
export const BROKER_AUTH_HEALTH_PORT = 8089;

interface Options {
  healthPort: number;
  fallback?: string;
  users: string;
  acl: string;
  out: string;
  watch?: boolean;
  pidFile?: string;
}

/**
 * `fanwatch broker-auth`: Mosquitto's password file, ACL and dynamic-security file from the
 * service users and the registry's active fans (docs/deploy.md, "Identities"). Once (the init
 * container), or --watch (the sidecar): rewritten on each registry change, then SIGHUP.
 */
export function addBrokerAuthCommand(program: Command, io: Io, registry: RegistryOpener = openNatsRegistry): void {
  const command = program
    .command("broker-auth")
    .description(
      "write Mosquitto's password file, ACL and dynamic-security file from the service users and the registry's active fans (user fan-<id> may publish only fan/messages/<id>, with the client id fan-<id>); --watch keeps them current",
    )
    .requiredOption(
      "--users <dir>",
      "one file per service user (connector, predict, telegraf, ...): its password or $7$ hash",
    )
    .requiredOption("--acl <file>", "the services' ACL (deploy/mosquitto/acl); each fan's lines are added")
    .requiredOption(
      "--out <dir>",
      "where passwd, acl and dynamic-security.json are written (the broker's /mosquitto/auth)",
    )
    .option(
      "--watch",
      "keep running: rewrite on every registry change and make Mosquitto reload (SIGHUP), without a restart",
    )
    .option("--pid-file <file>", "with --watch: Mosquitto's pid_file (the pod shares its process namespace)")
    .option(
      "--fallback <dir>",
      "keep a copy of the files here (the broker's own volume); once, with NATS unreachable, start the broker from that copy instead of failing",
    )
    .option(
      "--health-port <port>",
      `with --watch: /healthz (connected to the broker), /readyz (the registry applied), /livez`,
      (v) => Number(v),
      BROKER_AUTH_HEALTH_PORT,
    );
  const given = addSettingFlags(command, BROKER_AUTH_SETTINGS);
  addSettingsHelp(command, [{ title: "Settings (a flag beats its variable)", settings: BROKER_AUTH_SETTINGS }]);
  command.exitOverride();
  command.action(async (opts: Options & Record<string, unknown>) => {
    const settings = readSettings(BROKER_AUTH_SETTINGS, undefined, given(opts));
    const where = natsAddress(
      settings,
      "the fans' credentials are in the device registry (NATS KV bucket fan_registry)",
    );
    if (opts.watch === true && opts.pidFile === undefined)
      throw new ConfigError("--watch needs --pid-file: the broker's pid_file, to make it reload");
    const base = {
      usersDir: opts.users,
      aclFile: opts.acl,
      outDir: opts.out,
      topic: readTopics().telemetry,
      allowUnboundFans: settings.ALLOW_UNBOUND_FANS,
    };
    if (opts.watch !== true) {
      // NATS away when the broker's pod starts: the last files written, rather than no broker.
      const fans = await registry(where.url).catch(async (error: unknown) => {
        if (opts.fallback === undefined || !(await hasBrokerAuth(opts.fallback))) throw error;
        await copyBrokerAuth(opts.fallback, opts.out);
        io.err(
          `broker-auth: the registry is unreachable (${(error as Error).message}); the broker starts with the files of the last run, from ${opts.fallback}`,
        );
        return undefined;
      });
      if (fans === undefined) return;
      try {
        const files = await buildBrokerAuth(base, await fans.list());
        if (opts.fallback !== undefined) await writeBrokerAuth(opts.fallback, files);
        io.err(
          `broker-auth: ${files.services.length} service users, ${files.fanUsers.length} fans in ${opts.out}` +
            (files.withoutCredentials.length > 0
              ? `; active without credentials (fanwatch fans credentials ID): ${files.withoutCredentials.join(", ")}`
              : ""),
        );
      } finally {
        await fans.close();
      }
      return;
    }
    const services = await readServiceUsers(opts.users);
    const password = (await readFile(join(opts.users, CONTROL_USER), "utf8").catch(() => "")).replace(/\r?\n$/, "");
    if (password === "" || password.startsWith("$7$"))
      throw new ConfigError(
        `--watch logs in as ${CONTROL_USER}: ${join(opts.users, CONTROL_USER)} must hold its password`,
      );
    const { BrokerAuthWatcher } = await import("../lib/mqtt/broker-auth-watch.js");
    const log = createLogger("broker-auth");
    const fans = await registry(where.url);
    const watcher = new BrokerAuthWatcher({
      ...base,
      registry: fans,
      services,
      ...(opts.fallback === undefined ? {} : { fallbackDir: opts.fallback }),
      servicesAcl: await readFile(opts.acl, "utf8"),
      outDir: opts.out,
      pidFile: opts.pidFile as string,
      control: { url: settings.MQTT_URL, username: CONTROL_USER, password, from: "MQTT_URL" },
      log,
    });
    const { drainOnSignals } = await import("../templates/node22-ts/signals.js");
    void watcher.closed.then(() => fans.close());
    drainOnSignals(watcher, log);
    await watcher.start();
    const [{ startHealthServer }, { Registry }] = await Promise.all([
      import("../lib/infra/health-server.js"),
      import("prom-client"),
    ]);
    const health = await startHealthServer(
      { port: opts.healthPort, host: "0.0.0.0" },
      () => watcher.health(),
      new Registry(),
    );
    void watcher.closed.then(() => health.close());
    io.err(`broker-auth watching the registry on ${where.shown} (host ${hostname()})`);
    await new Promise<never>(() => {});
  });
}

/** Opens the registry at a NATS URL. */
export type RegistryOpener = (natsUrl: string) => Promise<FanRegistry>;

/**
 * The registry in NATS (lib/registry/nats-registry.ts), with NATS_KV_REPLICAS copies should this
 * be the first to open the bucket.
 */
async function openNatsRegistry(url: string): Promise<FanRegistry> {
  const { NATS_KV_REPLICAS: replicas } = readSettings({ NATS_KV_REPLICAS: HEALTH_SETTINGS.NATS_KV_REPLICAS });
  return openFanRegistry({ url, replicas, name: `fanwatch-broker-auth-${process.pid}` });
}
