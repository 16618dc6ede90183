import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../../lib/infra/log.js";
import { RegistryCache } from "../../lib/registry/cache.js";
import { openFanRegistry, type NatsFanRegistry } from "../../lib/registry/nats-registry.js";

/** How long to wait before trying the registry again when NATS could not open it. */
const RETRY_MS = 5_000;

/**
 * Which fans the device registry says are retired (bucket `fan_registry`, a watched copy: one map
 * lookup per fan, never a read per prediction). A retired fan is gone from the plant: health does
 * not declare it silent, and raises nothing for it; its record and history stay. Opened in the
 * background, retried until NATS lets it: until then no fan counts as retired (health works as it
 * did before the registry).
 */
export class RetiredFans {
  #registry: NatsFanRegistry | undefined;
  #cache: RegistryCache | undefined;
  #closed = false;
  readonly #opening: Promise<void>;

  /** `replicas`: NATS_KV_REPLICAS, the bucket's copies when health is the one to create it. */
  constructor(url: string, replicas: number, log: Logger) {
    this.#opening = this.#open(url, replicas, log);
  }

  isRetired(deviceID: string): boolean {
    return this.#cache?.get(deviceID)?.state === "retired";
  }

  /** Resolves once the registry is watched (for tests and start-up logs), or health closed first. */
  opened(): Promise<void> {
    return this.#opening;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#cache?.stop();
    await this.#registry?.close();
  }

  async #open(url: string, replicas: number, log: Logger): Promise<void> {
    for (let attempt = 1; !this.#closed; attempt++) {
      try {
        const registry = await openFanRegistry({
          url,
          replicas,
          name: `fanwatch-health-registry-${process.pid}`,
        });
        const cache = new RegistryCache(registry);
        await cache.start();
        if (this.#closed) {
          await cache.stop();
          await registry.close();
          return;
        }
        [this.#registry, this.#cache] = [registry, cache];
        log.info({ event: "registry_watched", fans: cache.records().length }, "watching the device registry");
        return;
      } catch (error) {
        if (attempt === 1)
          log.warn(
            { event: "registry_unavailable", err: (error as Error).message, retryInMs: RETRY_MS },
            "the device registry cannot be read yet: no fan counts as retired until it can",
          );
        await sleep(RETRY_MS, undefined, { ref: false });
      }
    }
  }
}
