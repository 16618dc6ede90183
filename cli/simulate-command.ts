import type { Command } from "commander";
import { fleetProfiles } from "../simulation/fan-profiles.js";
import type { FleetModelOptions } from "../simulation/fleet-model.js";
import { DEFAULT_TOPICS, readTopics, TOPIC_SETTINGS } from "../lib/infra/config.js";
import {
  brokerAddress,
  DEFAULT_MQTT_URL,
  MQTT_SETTINGS,
  mqttSettingsFromEnv,
  redactUrl,
} from "../lib/mqtt/settings.js";
import { HEALTH_HOST_SETTING, type HealthServer } from "../lib/infra/health-server.js";
import { readSettings } from "../lib/infra/settings.js";
import { addSettingsHelp, integer, number, settingParser, type Io } from "./parse.js";
import { PortInUseError, UsageError } from "../lib/errors.js";

export interface FleetFlags {
  fans: number;
  faulty: number;
  degrading: number;
  bearing: number;
  sudden: number;
  noisy: number;
  /** simulate only (start has no such flags). */
  drift?: number;
  driftPair?: number;
  hot?: number;
  ownLevels?: boolean;
  interval: number;
  degradeMinutes: number;
  onsetMinutes: number;
  seed: number;
}

/** The fleet `simulate` and `start` run unless told otherwise. */
export const DEFAULT_FLEET = Object.freeze({ fans: 12, faulty: 2, degrading: 2 });

/** The fleet flags `simulate` and `start` share. */
export function addFleetOptions(
  command: Command,
  defaults: { fans: number; faulty: number; degrading: number },
): Command {
  return command
    .option("--fans <n>", "simulated fans", integer("--fans"), defaults.fans)
    .option(
      "--faulty <k>",
      "of which faulty from the start; when not given and the fleet is too small for the default, --faulty and --degrading share the fans the other shapes leave (--fans 3: 1 faulty, 1 degrading, 1 healthy)",
      integer("--faulty"),
      defaults.faulty,
    )
    .option(
      "--degrading <d>",
      "of which start healthy and wear out, all four sensors drifting; scaled down as --faulty when not given",
      integer("--degrading"),
      defaults.degrading,
    )
    .option(
      "--bearing <b>",
      "of which start healthy and wear out with vibration alone drifting",
      integer("--bearing"),
      0,
    )
    .option(
      "--sudden <s>",
      "of which run healthy, then turn faulty at once (when: see --onset-minutes)",
      integer("--sudden"),
      0,
    )
    .option("--noisy <n>", "of which are healthy with rare single-reading spikes", integer("--noisy"), 0)
    .option(
      "--drift <n>",
      "of which start healthy and wear out with one sensor's level drifting to its worn range, the fans taking rotation, temperature, vibration and sound in turn (see --onset-minutes, --degrade-minutes)",
      integer("--drift"),
      0,
    )
    .option(
      "--drift-pair <n>",
      "of which wear out with two sensors drifting together, each fan its own pair",
      integer("--drift-pair"),
      0,
    )
    .option(
      "--hot <n>",
      'of which are healthy but run hot, 56–58 °C, above the healthy and faulty ranges: the shipped model raises false alarms on them (docs/models.md, "Learning from findings")',
      integer("--hot"),
      0,
    )
    .option(
      "--own-levels",
      "each fan reads at its own level per sensor, spread 5–10% of the fleet range's width either side, rather than over the fleet's whole healthy range (what health's baselines learn: docs/health.md)",
    )
    .option("--interval <ms>", "time between two readings of one fan", integer("--interval"), 2000)
    .option(
      "--degrade-minutes <m>",
      "how long a degrading or bearing fan takes to wear out",
      number("--degrade-minutes"),
      10,
    )
    .option(
      "--onset-minutes <m>",
      "degrading, bearing and sudden fans start to fail at a random moment within this many minutes; 0: at the first reading",
      number("--onset-minutes"),
      0,
    )
    .option("--seed <s>", "seed of the readings", integer("--seed"), 1);
}

/** The shapes whose count is a default that may be scaled down to fit the fleet. */
export type ScaledShape = "faulty" | "degrading";

/** Which of --faulty and --degrading the command line left to their defaults. */
export function defaultedShapes(command: Command): Set<ScaledShape> {
  return new Set((["faulty", "degrading"] as const).filter((name) => command.getOptionValueSource(name) === "default"));
}

/**
 * `defaulted`: --faulty and --degrading when not given. Their defaults (DEFAULT_FLEET) are
 * scaled down to a smaller fleet, sharing what the given shapes leave; given counts that do not
 * fit are refused with the whole mix named.
 */
export function fleetOptions(flags: FleetFlags, defaulted: ReadonlySet<ScaledShape> = new Set()): FleetModelOptions {
  const mix = fitDefaults(
    flags.fans,
    {
      faulty: flags.faulty,
      degrading: flags.degrading,
      bearing: flags.bearing ?? 0,
      sudden: flags.sudden ?? 0,
      noisy: flags.noisy ?? 0,
      drift: flags.drift ?? 0,
      driftPair: flags.driftPair ?? 0,
      hot: flags.hot ?? 0,
    },
    defaulted,
  );
  if (flags.fans < 0 || Object.values(mix).some((n) => n < 0))
    throw new UsageError(
      "--fans, --faulty, --degrading, --bearing, --sudden, --noisy, --drift, --drift-pair and --hot cannot be negative",
    );
  if (flags.interval < 10) throw new UsageError("--interval is in milliseconds and at least 10");
  if (flags.degradeMinutes <= 0) throw new UsageError("--degrade-minutes must be more than 0");
  const onsetMinutes = flags.onsetMinutes ?? 0;
  if (!(onsetMinutes >= 0)) throw new UsageError("--onset-minutes cannot be negative");
  if (flags.fans > 0) fleetProfiles(flags.fans, mix); // throws on a mix that does not fit
  return {
    fans: flags.fans,
    ...mix,
    intervalMs: flags.interval,
    degradeMs: flags.degradeMinutes * 60_000,
    onsetMs: onsetMinutes * 60_000,
    ownLevels: flags.ownLevels === true,
    seed: flags.seed,
  };
}

function fitDefaults<
  M extends Record<ScaledShape | "bearing" | "sudden" | "noisy" | "drift" | "driftPair" | "hot", number>,
>(fans: number, mix: M, defaulted: ReadonlySet<ScaledShape>): M {
  const total = Object.values(mix).reduce((a, b) => a + b, 0);
  const given = total - [...defaulted].reduce((n, shape) => n + mix[shape], 0);
  if (total <= fans || given > fans || defaulted.size === 0) return mix;
  const share = Math.floor((fans - given) / defaulted.size);
  return { ...mix, ...Object.fromEntries([...defaulted].map((shape) => [shape, Math.min(mix[shape], share)])) };
}

export function addSimulateCommand(program: Command, io: Io): void {
  const command = program
    .command("simulate")
    .description("publish a simulated fleet's readings (the reference payload) to an MQTT broker")
    .option(
      "--broker <url>",
      `MQTT broker URL or host name (default $MQTT_URL or ${DEFAULT_MQTT_URL}; credentials from MQTT_USERNAME/MQTT_PASSWORD)`,
      settingParser(brokerAddress),
    )
    .option("--topic <topic>", `topic to publish to (default $TELEMETRY_TOPIC or ${DEFAULT_TOPICS.telemetry})`)
    .option(
      "--per-fan-topics",
      "publish each fan's readings on <topic>/<deviceID>, as fans bound to their credentials do (docs/registry.md)",
    )
    .option("--qos <0|1>", "QoS of the publishes", integer("--qos"), 1)
    .option("--duration <s>", "stop after this many seconds (default: run until Ctrl-C)", number("--duration"))
    .option(
      "--health-port <port>",
      "serve /healthz (200 while connected and publishing), /livez and /metrics on this port, on $HEALTH_HOST or 0.0.0.0: a pod's probes",
      integer("--health-port"),
    )
    .option(
      "--truth <file>",
      "write each fan's ground truth (shape, when it starts to wear, when it fails) to this file as JSON lines",
    );
  addFleetOptions(command, DEFAULT_FLEET);
  addSettingsHelp(command, [
    { title: "The broker, unless --broker names it", settings: MQTT_SETTINGS },
    { title: "The topic, unless --topic names it (TELEMETRY_TOPIC)", settings: TOPIC_SETTINGS },
  ]);
  command.action(
    async (
      opts: FleetFlags & {
        broker?: string;
        topic?: string;
        perFanTopics?: boolean;
        qos: number;
        duration?: number;
        truth?: string;
        healthPort?: number;
      },
      self: Command,
    ) => {
      if (opts.qos !== 0 && opts.qos !== 1) throw new UsageError("--qos is 0 or 1");
      const fleet = fleetOptions(opts, defaultedShapes(self));
      let stop = () => {};
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      const [{ connectMqtt, probeBroker }, { FleetSimulator }, { serveSimulatorHealth }] = await Promise.all([
        import("../lib/mqtt/client.js"),
        import("../simulation/simulator.js"),
        import("../simulation/health.js"),
      ]);
      const settings = mqttSettingsFromEnv(undefined, { url: opts.broker, from: "--broker" });
      const topic = opts.topic ?? readTopics().telemetry;
      await probeBroker(settings);
      const client = connectMqtt(settings, {
        clientId: `fanwatch-simulator-${process.pid}`,
        onError: (e) => io.err(`MQTT: ${e.message}`),
      });
      const perFanTopics = opts.perFanTopics === true;
      const simulator = new FleetSimulator(client, { ...fleet, qos: opts.qos, topic, perFanTopics });
      const profiles = simulator.fans.reduce<Record<string, number>>(
        (n, f) => ({ ...n, [f.profile]: (n[f.profile] ?? 0) + 1 }),
        {},
      );
      io.err(
        `simulating ${fleet.fans} fans (${Object.entries(profiles)
          .map(([p, n]) => `${n} ${p}`)
          .join(
            ", ",
          )}) on ${redactUrl(settings.url)} topic ${perFanTopics ? `${topic}/<deviceID>` : topic}, one reading per fan every ${fleet.intervalMs} ms`,
      );
      let health: HealthServer | undefined;
      let progress: NodeJS.Timeout | undefined;
      let deadline: NodeJS.Timeout | undefined;
      let stoppedCleanly = false;
      // Whatever fails from here (a --health-port in use, a --truth file it cannot write), the
      // client, the fans' timers and the health server are closed, so that the process exits.
      try {
        // The health server first: a port in use is refused before any fan publishes.
        health =
          opts.healthPort === undefined
            ? undefined
            : await serveSimulatorHealth(simulator, {
                port: opts.healthPort,
                host: readSettings({ HEALTH_HOST: HEALTH_HOST_SETTING }).HEALTH_HOST,
              }).catch((error: unknown) => {
                if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
                throw new PortInUseError(
                  `--health-port ${opts.healthPort} is in use: stop what uses it or pick another port`,
                  { cause: error },
                );
              });
        await simulator.start();
        if (health !== undefined) io.err(`/healthz, /livez and /metrics on port ${health.port}`);
        if (opts.truth !== undefined) {
          const { writeFile } = await import("node:fs/promises");
          await writeFile(opts.truth, simulator.truth.map((t) => JSON.stringify(t)).join("\n") + "\n");
          io.err(`ground truth of ${simulator.truth.length} fans in ${opts.truth}`);
        }
        if (opts.duration !== undefined) deadline = setTimeout(stop, opts.duration * 1000);
        progress = setInterval(
          () =>
            io.progress(
              `published ${simulator.published}${simulator.failed > 0 ? `, ${simulator.failed} refused` : ""}`,
            ),
          1000,
        );
        await stopped;
        await simulator.drain();
        stoppedCleanly = true;
      } finally {
        clearTimeout(deadline);
        clearInterval(progress);
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        await simulator.close();
        // After a failure, forced: a client still connecting would otherwise hold the process.
        await client.endAsync(!stoppedCleanly);
        await health?.close();
      }
      io.progressDone();
      io.err(`published ${simulator.published} readings`);
    },
  );
}
