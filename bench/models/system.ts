// The pipeline bench:models runs: Mosquitto (the project's config) → connector → local gateway →
// predict → score → fan/anomaly → connector → health → NATS, as `npm start` wires it, with a real
// nats-server given to the gateway as NATS_URL (so score follows the model registry, predict writes
// its shadow comparisons and health keeps its records there). Every function's replicas are fixed
// (scale.min = scale.max), so the autoscaler changes nothing during the run.
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import mqtt, { type MqttClient } from "mqtt";
import { mkdtemp, rm } from "node:fs/promises";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { parse, stringify } from "yaml";
import { CONNECTOR_NODE_OPTIONS } from "../../connectors/mqtt/node-options.js";
import { freePort } from "../../lib/infra/net.js";
import { ACTIVE_BUCKET, replicaKeys } from "../../lib/models/names.js";
import { ModelRegistry } from "../../lib/models/registry.js";
import { ReplicaStatusSchema, type ReplicaStatus } from "../../lib/models/schemas.js";
import { Lifecycle } from "../../runtime/system/lifecycle.js";
import { CliProcess } from "../../test/support/cli-process.js";
import { startMosquitto } from "../../test/support/mosquitto.js";
import { startNats } from "../../test/support/nats.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { childPids, readArgs } from "../support/process-stats.js";
import { replicaMetrics, scrape, type Sample } from "./metrics.js";

export const SITE = "bench";

export interface SystemOptions {
  /** Replicas of each function, fixed for the run. */
  replicas: Record<"score" | "predict" | "health", number>;
}

/** A prediction as the listener saw it on fan/anomaly. */
export interface Arrival {
  key: string;
  model: string | undefined;
  at: number;
}

export interface System {
  publisher: MqttClient;
  registry: ModelRegistry;
  /** Each score replica's last status, by replica name (a KV watch: every write seen as it lands). */
  statuses: Map<string, ReplicaStatus>;
  /** Resolves with true once `test` holds for the replicas' statuses (checked on every status written), false after `timeoutMs`. */
  untilStatuses(test: (statuses: ReplicaStatus[]) => boolean, timeoutMs?: number): Promise<boolean>;
  onArrival(listener: (arrival: Arrival) => void): void;
  deadLetters(): number;
  /** Our processes by name ("score-1234" for a replica), for cpuByProcess. */
  pids(): Record<string, number | undefined>;
  /** Prometheus samples: the connector's, the gateway's and each function replica's, by process name. */
  metrics(): Promise<Record<string, Sample[]>>;
  stop(): Promise<void>;
}

export async function startSystem(options: SystemOptions): Promise<System> {
  const broker = await startMosquitto();
  const nats = await startNats();
  const workspace = await mkdtemp(join(tmpdir(), "fanwatch-bench-models-"));
  const parts = new Lifecycle({ log: pino({ level: "silent" }) });
  const stops: Array<() => Promise<unknown>> = [];
  const run = (args: string[], env: Record<string, string>, ready: RegExp) =>
    parts.start(new CliProcess({ name: args[0] ?? "fanwatch", args, env: { LOG_LEVEL: "warn", ...env }, ready }));
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await parts.stop();
    await nats.stop();
    await broker.stop();
    await rm(workspace, { recursive: true, force: true });
  };
  try {
    const stackFile = join(workspace, "stack.yml");
    writeFileSync(stackFile, fixedStack(options.replicas));
    const gatewayPort = await freePort();
    const gateway = await run(
      ["gateway", "--port", String(gatewayPort), "--stack", stackFile],
      { MQTT_URL: broker.url, NATS_URL: nats.url, SITE },
      /gateway running/,
    );
    const connectorPort = await freePort();
    const connector = await run(
      ["connector"],
      {
        gateway_url: `http://127.0.0.1:${gatewayPort}`,
        broker: broker.url,
        topic: "fan/messages,fan/anomaly",
        functions: "fan/messages=predict;fan/anomaly=health",
        port: String(connectorPort),
        client_id: "bench-models",
        NODE_OPTIONS: CONNECTOR_NODE_OPTIONS,
      },
      /connector running/,
    );

    const nc: NatsConnection = await connect({ servers: nats.url });
    stops.push(() => nc.close());
    const registry = await ModelRegistry.open(nc);
    const statuses = new Map<string, ReplicaStatus>();
    const waiters = new Set<() => void>();
    const watch = await (await new Kvm(nc).open(ACTIVE_BUCKET)).watch({ key: replicaKeys(SITE) });
    stops.push(async () => watch.stop());
    void (async () => {
      for await (const entry of watch) {
        if (entry.operation !== "PUT") continue;
        const status = ReplicaStatusSchema.safeParse(entry.json());
        if (!status.success) continue;
        statuses.set(status.data.replica, status.data);
        for (const check of [...waiters]) check();
      }
    })();

    const arrivalListeners: Array<(arrival: Arrival) => void> = [];
    let deadLetters = 0;
    const listener = await mqtt.connectAsync(broker.url, { clientId: "bench-models-listener" });
    stops.push(() => listener.endAsync());
    listener.on("message", (topic, payload) => {
      if (topic === "fan/deadletter") {
        deadLetters++;
        return;
      }
      const p = JSON.parse(payload.toString()) as { deviceID: string; timeStamp: number; model?: string };
      const arrival = { key: `${p.deviceID}@${p.timeStamp}`, model: p.model, at: Date.now() };
      for (const l of arrivalListeners) l(arrival);
    });
    await listener.subscribeAsync(["fan/anomaly", "fan/deadletter"], { qos: 1 });
    const publisher = await mqtt.connectAsync(broker.url, { clientId: "bench-models-fleet" });
    stops.push(() => publisher.endAsync());

    const functionPids = () =>
      childPids(gateway.pid).flatMap((pid) => {
        const name = / function (\w+) /.exec(readArgs(pid))?.[1];
        return name === undefined ? [] : [[`${name}-${pid}`, pid] as const];
      });
    return {
      publisher,
      registry,
      statuses,
      untilStatuses(test, timeoutMs = 30_000) {
        return new Promise((resolve) => {
          const timer = setTimeout(() => {
            waiters.delete(check);
            resolve(false);
          }, timeoutMs);
          const check = () => {
            if (!test([...statuses.values()])) return;
            waiters.delete(check);
            clearTimeout(timer);
            resolve(true);
          };
          waiters.add(check);
          check();
        });
      },
      onArrival: (l) => arrivalListeners.push(l),
      deadLetters: () => deadLetters,
      pids: () => ({
        mosquitto: broker.pid,
        nats: childPids(nats.pid).find((pid) => readArgs(pid).includes("nats-server")) ?? nats.pid,
        connector: connector.pid,
        gateway: gateway.pid,
        ...Object.fromEntries(functionPids()),
        "load generator": process.pid,
      }),
      async metrics() {
        const replicas = await Promise.all(
          functionPids().map(async ([name, pid]) => [name, await replicaMetrics(pid)] as const),
        );
        return {
          connector: await scrape(`http://127.0.0.1:${connectorPort}/metrics`),
          gateway: await scrape(`http://127.0.0.1:${gatewayPort}/metrics`),
          ...Object.fromEntries(replicas),
        };
      },
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** stack.yml with each function's replicas fixed: scale.min = scale.max, so nothing autoscales. */
function fixedStack(replicas: SystemOptions["replicas"]): string {
  const stack = parse(readFileSync(join(REPO_ROOT, "stack.yml"), "utf8")) as {
    functions: Record<string, { labels?: Record<string, string> }>;
  };
  for (const [name, fn] of Object.entries(stack.functions)) {
    const n = String(replicas[name as keyof typeof replicas] ?? 1);
    fn.labels = { ...fn.labels, "com.openfaas.scale.min": n, "com.openfaas.scale.max": n };
  }
  return stringify(stack);
}
