import type { Scenario } from "./run.js";
import { sendPoison } from "./poison.js";
import type { FunctionName, Role } from "./system.js";

const OVERLOAD_FACTOR = 3;
const OVERLOAD_MS = 30_000;
/**
 * NATS stays down at least this long, also in the short run: the connector's circuit for health
 * opens about 3 s into an outage (6 failed attempts, 100 ms doubling), so in a shorter one the
 * prediction path would look unaffected even where health's outage does hold it up.
 */
const NATS_DOWN_MIN_MS = 15_000;

/** A process ended by `signal` (SIGKILL: a crash), then started again at once, as a supervisor would. */
function restarted(role: Role, signal: NodeJS.Signals): Scenario["inject"] {
  return async ({ system }) => {
    await system.kill(role, signal);
    await system.startRole(role);
  };
}

/** A function scaled to 0 through the gateway's API (its process stopped) for the fault duration. */
function scaledToZero(name: FunctionName): Scenario["inject"] {
  return async ({ system, options, sleep }) => {
    await system.scale(name, 0);
    await sleep(options.faultMs);
    await system.scale(name, 1);
  };
}

/** The scenarios, in the order the suite runs them. */
export const SCENARIOS: Scenario[] = [
  {
    name: "baseline",
    fault: "none: steady load only",
    noFault: true,
    inject: ({ options, sleep }) => sleep(options.faultMs),
  },
  {
    name: "score-down",
    fault: "score scaled to 0 by the gateway's API (its process stopped) for the fault duration, then to 1",
    inject: scaledToZero("score"),
  },
  {
    name: "predict-down",
    fault: "predict scaled to 0 for the fault duration, then to 1",
    inject: scaledToZero("predict"),
  },
  {
    name: "gateway-restarted",
    fault: "the gateway stopped (SIGTERM: it stops score and predict) and started again at once",
    inject: restarted("gateway", "SIGTERM"),
  },
  {
    name: "connector-killed",
    fault: "connector SIGKILLed, started again at once",
    inject: restarted("connector", "SIGKILL"),
  },
  {
    name: "writer-killed",
    fault: "InfluxDB writer SIGKILLed, started again at once",
    inject: restarted("writer", "SIGKILL"),
  },
  {
    name: "mosquitto-restarted",
    fault: "Mosquitto stopped (SIGTERM, persistence on) and started again at once",
    inject: ({ system }) => system.broker.restart(),
  },
  {
    name: "influxdb-down",
    fault: "InfluxDB stopped for the fault duration, then started on the same data",
    inject: ({ system, options }) => system.influx.restart(options.faultMs),
  },
  {
    name: "nats-down",
    fault: `nats-server stopped (SIGTERM) for the fault duration (at least ${NATS_DOWN_MIN_MS / 1000} s), then started again on the same port and store; a tenth of the fans turn faulty as it stops`,
    withHealth: true,
    healthFault: true,
    inject: async ({ system, options, sleep }) => {
      const nats = system.nats;
      await nats.halt();
      await sleep(Math.max(options.faultMs, NATS_DOWN_MIN_MS));
      await nats.restart();
    },
  },
  {
    name: "nats-killed",
    fault:
      "nats-server SIGKILLed (nothing flushed) and started again at once on the same port and store; the fault lasts until health answers again; a tenth of the fans turn faulty as it dies",
    withHealth: true,
    healthFault: true,
    inject: async ({ system, sleep }) => {
      const nats = system.nats;
      await nats.kill();
      await nats.restart();
      // Health learns of the crash from its connection and reconnects by itself: until then it is down.
      const deadline = Date.now() + 60_000;
      while (!(await system.healthAnswers()) && Date.now() < deadline) await sleep(100);
    },
  },
  {
    name: "poison",
    fault:
      "bad timestamps, 1 MB and 100 KiB payloads, non-UTF-8 bytes, __proto__ keys, one reading from each of many new device IDs",
    inject: ({ system, load, ledger, options }) =>
      sendPoison(system.broker.url, ledger, load, { distinctDevices: options.distinctDevices }),
  },
  {
    name: "overload",
    fault: `${OVERLOAD_FACTOR}× the rate for 30 s (or the fault duration if shorter)`,
    inject: async ({ load, options, sleep }) => {
      load.setRate(options.rate * OVERLOAD_FACTOR);
      await sleep(Math.min(OVERLOAD_MS, options.faultMs));
      load.setRate(options.rate);
    },
  },
];
