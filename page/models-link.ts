import { setTimeout as sleep } from "node:timers/promises";
import { RegistryUnavailableError } from "../lib/errors.js";
import type { Logger } from "../lib/infra/log.js";
import { ServiceBase } from "../lib/infra/service.js";
import type { ModelRegistry } from "../lib/models/registry.js";
import { readModelsPanel, type ModelsPanel } from "./models-view.js";

/** How long to wait before trying NATS again when the model registry could not be opened. */
const RETRY_MS = 5_000;
/** A panel read this recently is answered again: many viewers polling make one read. */
const FRESH_MS = 1_000;

/** The model registry opened over a connection of its own, and how to let both go. */
export interface OpenedModels {
  registry: ModelRegistry;
  close(): Promise<void>;
}

/**
 * The page's view of the model registry (docs/page.md, "Models"), opened in the background and
 * retried every 5 s while NATS is away, as the fan registry is (registry-link.ts): the rest of the
 * page never waits for it: start() resolves at once. Reads only; a read under way is shared, and
 * one a second old reused. A service of its own so that `fanwatch start` (runtime/system) runs it
 * beside the page it serves, as `fanwatch page` does inside PageService.
 */
export class ModelsLink extends ServiceBase {
  readonly name = "models-link";
  #opened: OpenedModels | undefined;
  #lastError = "not connected yet";
  #opening: Promise<void> | undefined;
  #reading: Promise<ModelsPanel> | undefined;
  #last: { at: number; panel: ModelsPanel } | undefined;
  readonly #stop = new AbortController();
  readonly #golden = new Map<string, { accuracy: number | null; labelled: number; refused: string | null }>();

  constructor(
    private readonly open: () => Promise<OpenedModels>,
    private readonly site: string,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {
    super();
  }

  /** For /healthz: "open", or "waiting" while NATS cannot be read. */
  get state(): "open" | "waiting" {
    return this.#opened === undefined ? "waiting" : "open";
  }

  protected onStart(): Promise<void> {
    this.#opening = this.#open();
    return Promise.resolve();
  }

  /** Resolves once the registry is open (tests), or the link closed first. */
  opened(): Promise<void> {
    return this.#opening ?? Promise.resolve();
  }

  /** The site's models; RegistryUnavailableError while NATS is away or cannot be read. */
  async panel(): Promise<ModelsPanel> {
    const opened = this.#opened;
    if (opened === undefined)
      throw new RegistryUnavailableError(
        `the model registry (NATS) cannot be read yet: ${this.#lastError}; the page tries again every 5 s`,
      );
    const last = this.#last;
    if (last !== undefined && this.now().getTime() - last.at < FRESH_MS) return last.panel;
    this.#reading ??= readModelsPanel(opened.registry, this.site, this.now(), this.#golden)
      .then((panel) => {
        this.#last = { at: this.now().getTime(), panel };
        return panel;
      })
      .finally(() => {
        this.#reading = undefined;
      });
    return this.#reading;
  }

  protected async onClose(): Promise<void> {
    this.#stop.abort();
    // An opening under way ends first (it lets go of a registry opened after the close), so that
    // close() resolves with no connection left behind.
    await this.#opening?.catch(() => {});
    await this.#opened?.close();
  }

  async #open(): Promise<void> {
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        const opened = await this.open();
        if (this.stopping) return void (await opened.close());
        this.#opened = opened;
        this.log.info({ event: "models_registry_open", attempt, site: this.site }, "page: reading the model registry");
        return;
      } catch (error) {
        this.#lastError = (error as Error).message;
        if (attempt === 1)
          this.log.warn(
            { event: "models_registry_unavailable", err: this.#lastError, retryInMs: RETRY_MS },
            "page: the model registry cannot be read yet: the Models panel says so until it can",
          );
        await sleep(RETRY_MS, undefined, { ref: false, signal: this.#stop.signal }).catch(() => {});
      }
    }
  }
}

/** Connects to NATS (reconnecting for ever once connected) and opens the model registry over it. */
export async function openModelRegistry(options: {
  url: string;
  replicas: number;
  name: string;
  timeoutMs?: number;
}): Promise<OpenedModels> {
  const [{ connect }, { jetstream }, { ModelRegistry }] = await Promise.all([
    import("@nats-io/transport-node"),
    import("@nats-io/jetstream"),
    import("../lib/models/registry.js"),
  ]);
  const timeout = options.timeoutMs ?? 3_000;
  const nc = await connect({ servers: options.url, name: options.name, maxReconnectAttempts: -1, timeout }).catch(
    (error: unknown) => {
      throw new RegistryUnavailableError(`cannot reach NATS: ${(error as Error).message}`, { cause: error });
    },
  );
  try {
    const registry = await ModelRegistry.open(jetstream(nc, { timeout }), { replicas: options.replicas });
    return { registry, close: () => nc.close() };
  } catch (error) {
    await nc.close();
    throw error;
  }
}
