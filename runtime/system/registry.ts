import { HEALTH_SETTINGS } from "../../functions/health/config.js";
import type { Logger } from "../../lib/infra/log.js";
import { readSettings } from "../../lib/infra/settings.js";
import { redactUrl } from "../../lib/mqtt/settings.js";
import { ServiceBase } from "../../lib/infra/service.js";
import { MemoryFanRegistry } from "../../lib/registry/memory-registry.js";
import { openFanRegistry, REGISTRY_BUCKET } from "../../lib/registry/nats-registry.js";
import type { FanRecord } from "../../lib/registry/fan-record.js";
import type { FanRegistry } from "../../lib/registry/registry.js";
import { createFleet, type FleetModelOptions } from "../../simulation/fleet-model.js";

/** Who the simulated fleet's records say let them in. */
export const START_APPROVER = "fanwatch start";
/** Fans registered at once: a few round trips in flight, however large the simulated fleet. */
const CONCURRENCY = 16;

export interface RegistryServiceOptions {
  /** The health state's NATS (HealthState.natsUrl): the registry's bucket goes beside health's; undefined: memory. */
  natsUrl: string | undefined;
  /** The simulated fleet, registered before it publishes. */
  fleet: FleetModelOptions;
  env: NodeJS.ProcessEnv;
  say: (line: string) => void;
  log: Logger;
}

/**
 * The device registry under `fanwatch start` (docs/registry.md): in NATS (bucket `fan_registry`)
 * where the fans' health is, else in memory; started before the connector and the page, which
 * read it, and before the simulator, whose fans it registers as active (approved by
 * "fanwatch start") so that the demo fleet's readings are let in from the first one. A simulated
 * fan someone retired stays retired: a person's decision outlives a restart.
 */
export class RegistryService extends ServiceBase {
  readonly name = "device registry";
  #registry: FanRegistry | undefined;

  constructor(private readonly options: RegistryServiceOptions) {
    super();
  }

  /** The registry, once started. */
  get registry(): FanRegistry {
    if (this.#registry === undefined) throw new Error("the device registry is not started");
    return this.#registry;
  }

  protected async onStart(): Promise<void> {
    const { natsUrl, env, say, log } = this.options;
    const where =
      natsUrl === undefined
        ? "memory (not durable: install nats-server or set NATS_URL to keep it)"
        : `NATS at ${redactUrl(natsUrl)}, bucket ${REGISTRY_BUCKET}`;
    this.#registry =
      natsUrl === undefined
        ? new MemoryFanRegistry()
        : await openFanRegistry({
            url: natsUrl,
            name: `fanwatch-start-registry-${process.pid}`,
            replicas: readSettings({ NATS_KV_REPLICAS: HEALTH_SETTINGS.NATS_KV_REPLICAS }, env).NATS_KV_REPLICAS,
            log,
          });
    const ids = this.options.fleet.fans > 0 ? createFleet(this.options.fleet).map((f) => f.deviceID) : [];
    const { registered, retired } = await registerFleet(this.#registry, ids);
    const all = await this.#registry.list();
    const count = (state: FanRecord["state"]) => all.filter((r) => r.state === state).length;
    say(
      `device registry in ${where}: ${all.length} fans (${count("active")} active, ${count("pending")} pending, ${count("retired")} retired)` +
        (ids.length === 0
          ? ""
          : registered === 0
            ? `; the ${ids.length} simulated fans were registered already`
            : `; registered ${registered} of the ${ids.length} simulated fans as active`),
    );
    if (retired.length > 0)
      say(
        `simulated fans ${retired.slice(0, 10).join(", ")}${retired.length > 10 ? ` and ${retired.length - 10} more` : ""} stay retired, as someone decided: their readings are refused (fanwatch fans add <id> lets one in again)`,
      );
  }

  protected async onClose(): Promise<void> {
    await this.#registry?.close();
  }
}

/**
 * Registers `ids` as active, approved by START_APPROVER: those the registry lacks and those
 * pending. Active ones are left as they are (their name, who approved them), retired ones too.
 */
export async function registerFleet(
  registry: FanRegistry,
  ids: readonly string[],
): Promise<{ registered: number; retired: string[] }> {
  const known = new Map((await registry.list()).map((r) => [r.id, r]));
  const retired = ids.filter((id) => known.get(id)?.state === "retired");
  const todo = ids.filter((id) => {
    const state = known.get(id)?.state;
    return state === undefined || state === "pending";
  });
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const id = todo[next++] as string;
      await registry.add(id, known.has(id) ? {} : { name: `simulated fan ${id}`, tags: ["simulated"] }, START_APPROVER);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, todo.length) }, worker));
  return { registered: todo.length, retired };
}
