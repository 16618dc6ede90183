import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../lib/infra/log.js";
import { RegistryCache } from "../lib/registry/cache.js";
import type { FanRegistry } from "../lib/registry/registry.js";

/** How long to wait before trying the registry again when NATS could not open it. */
const RETRY_MS = 5_000;

/**
 * The page's fan registry, opened in the background and retried until NATS lets it (as health's
 * RetiredFans does): the page never depended on NATS to serve, and must not crash-loop while NATS
 * is away. Until it opens the page counts the fans it sees ("no registry yet") and the Fans panel
 * answers 503; once open, `onWatched` hands its cache to the fleet view.
 */
export class RegistryLink {
  #registry: FanRegistry | undefined;
  #cache: RegistryCache | undefined;
  #closed = false;
  #opening: Promise<void> | undefined;

  constructor(
    private readonly open: () => Promise<FanRegistry>,
    private readonly log: Logger,
    private readonly onWatched: (cache: RegistryCache) => void,
  ) {}

  /** The registry once it is watched; undefined until then. */
  get registry(): FanRegistry | undefined {
    return this.#cache === undefined ? undefined : this.#registry;
  }

  /** For /healthz: "watched", or "waiting" while NATS cannot be read. */
  get state(): "watched" | "waiting" {
    return this.#cache === undefined ? "waiting" : "watched";
  }

  /** Starts opening it in the background; resolves at once. */
  start(): void {
    this.#opening ??= this.#open();
  }

  /** Resolves once the registry is watched (for tests), or the link closed first. */
  watched(): Promise<void> {
    return this.#opening ?? Promise.resolve();
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#cache?.stop();
    await this.#registry?.close();
  }

  async #open(): Promise<void> {
    for (let attempt = 1; !this.#closed; attempt++) {
      let registry: FanRegistry | undefined;
      try {
        registry = await this.open();
        const cache = new RegistryCache(registry);
        await cache.start();
        if (this.#closed) {
          await cache.stop();
          await registry.close();
          return;
        }
        [this.#registry, this.#cache] = [registry, cache];
        this.onWatched(cache);
        this.log.info(
          { event: "registry_watched", attempt, fans: cache.records().length },
          "page: counting fans from the device registry",
        );
        return;
      } catch (error) {
        await registry?.close().catch(() => undefined);
        if (attempt === 1)
          this.log.warn(
            { event: "registry_unavailable", err: (error as Error).message, retryInMs: RETRY_MS },
            "page: the device registry cannot be read yet: fans are counted as seen (no registry yet) until it can",
          );
        await sleep(RETRY_MS, undefined, { ref: false });
      }
    }
  }
}
