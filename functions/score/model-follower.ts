import { setTimeout as sleep } from "node:timers/promises";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ModelNotFoundError, ModelRefusedError } from "../../lib/errors.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import type { Logger } from "../../lib/infra/log.js";
import { backoffDelay } from "../../lib/infra/retry.js";
import { ServiceBase } from "../../lib/infra/service.js";
import { redactUrl } from "../../lib/mqtt/settings.js";
import { bundleArtifacts } from "../../lib/models/bundle.js";
import { checkGoldenSet, describeGoldenCheck } from "../../lib/models/golden.js";
import { ModelRegistry, type PointerEntry, type PointerWatch } from "../../lib/models/registry.js";
import { REPLICA_STATUS_EVERY_MS, type ModelBundle, type Refusal } from "../../lib/models/schemas.js";
import { modelRefusals, modelSwaps, showServed } from "./metrics.js";
import type { ModelHolder } from "./model-holder.js";

/** Why a replica would not serve a version: the label of score_model_refusals_total. */
export type RefusalReason = "missing" | "bundle" | "load" | "golden";

export interface FollowerOptions {
  /** NATS_URL. */
  url: string;
  site: string;
  /** SCORE_REPLICA: this replica's name in its status. */
  replica: string;
  /** The model in the image (MODEL_DIR) as a bundle: the site's first version if it has none. */
  shipped: ModelBundle;
  holder: ModelHolder;
  backend?: string;
  /** NATS_KV_REPLICAS: the buckets' copies, should this replica make them. @default 1 */
  replicas?: number;
  log: Logger;
  /** How often the replica's status is written besides on every change. @default REPLICA_STATUS_EVERY_MS */
  statusEveryMs?: number;
}

/** Waits between attempts while NATS or the registry is away: 0.5 s doubling to 10 s. */
const RETRY = { baseMs: 500, capMs: 10_000 };
const CONNECT_TIMEOUT_MS = 2_000;
/** Refusals listed in the status (the schema's limit); more are remembered so each is refused once. */
const MAX_REFUSALS_LISTED = 10;
const MAX_REFUSALS_KEPT = 1_000;

/**
 * Makes a score replica serve its site's active model and shadow (docs/models.md, "The swap"). It
 * bootstraps the site with the model in the image (the first replica of a fresh site stores it as
 * the first version and points the site at it), then watches the site's pointer: on a change it
 * loads the named versions in the background, each one checked (its bytes against its id, loads,
 * answers its golden set; loading warms it up), and only then swaps them in, between calls. A
 * version that fails a check is refused: logged once, counted, listed in the replica's status, and
 * the models served before keep serving. While NATS is away the replica serves what it has and
 * tries again; the function never fails for want of the registry.
 */
export class ModelFollower extends ServiceBase {
  readonly name = "model follower";
  readonly #options: FollowerOptions;
  readonly #stop = new AbortController();
  #nc: NatsConnection | undefined;
  #registry: ModelRegistry | undefined;
  #watch: PointerWatch | undefined;
  #running: Promise<void> | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  /** The pointer revision acted on; 0 before the first. */
  #revision = 0;
  readonly #refused = new Map<string, Refusal>();
  #resolveSynced: () => void = () => {};
  /** Resolves once the first pointer has been acted on, or the follower stopped. */
  readonly synced: Promise<void>;
  #unavailableSaid = false;

  constructor(options: FollowerOptions) {
    super();
    this.#options = options;
    this.synced = new Promise((resolve) => (this.#resolveSynced = resolve));
  }

  /** The pointer revision this replica has acted on (0: none yet), and the versions it refused, newest first. */
  get state(): { revision: number; refused: Refusal[] } {
    return { revision: this.#revision, refused: this.#refusals() };
  }

  protected async onStart(): Promise<void> {
    // Never waits for NATS: the replica serves MODEL_DIR until the registry answers.
    this.#running = this.#run();
    const every = this.#options.statusEveryMs ?? REPLICA_STATUS_EVERY_MS;
    this.#statusTimer = setInterval(() => void this.#writeStatus(), every);
    this.#statusTimer.unref();
  }

  protected async onClose(): Promise<void> {
    this.#stop.abort();
    clearInterval(this.#statusTimer);
    this.#watch?.stop();
    // Closed first, so that a read or load waiting on NATS ends now rather than at its timeout.
    await this.#nc?.close().catch(() => {});
    await this.#running;
    await this.#nc?.close().catch(() => {}); // one that connected meanwhile
    this.#resolveSynced();
  }

  async #run(): Promise<void> {
    const { log, url } = this.#options;
    for (let failures = 0; !this.stopping;) {
      try {
        await this.#follow();
        failures = 0;
      } catch (error) {
        if (this.stopping) return;
        failures++;
        if (!this.#unavailableSaid) {
          this.#unavailableSaid = true;
          log.warn(
            { event: "registry_unavailable", nats: redactUrl(url), err: (error as Error).message },
            `the model registry cannot be followed yet: serving ${this.#options.holder.active.metadata.id} and trying again`,
          );
        }
      }
      if (this.stopping) return;
      await sleep(backoffDelay(RETRY, Math.max(1, failures)), undefined, { signal: this.#stop.signal }).catch(() => {});
    }
  }

  /** Connects if needed, bootstraps the site, then acts on every pointer value until the watch ends. */
  async #follow(): Promise<void> {
    const { url, site, replica, shipped, log } = this.#options;
    // A short attempt: one that hangs (an address that drops packets) would hold a close up.
    this.#nc ??= await connect({
      servers: url,
      name: `fanwatch-score-${replica}`,
      maxReconnectAttempts: -1,
      timeout: CONNECT_TIMEOUT_MS,
    });
    this.#registry ??= await ModelRegistry.open(this.#nc, {
      backend: this.#options.backend,
      replicas: this.#options.replicas ?? 1,
    });
    await this.#registry.bootstrap(site, shipped, replica);
    const watch = await this.#registry.watchPointer(site);
    this.#watch = watch;
    if (this.#unavailableSaid) {
      this.#unavailableSaid = false;
      log.info({ event: "registry_followed", site }, `following the model registry of site ${site}`);
    }
    try {
      for await (const entry of watch) {
        if (this.stopping) return;
        await this.#act(entry);
      }
    } finally {
      watch.stop(); // also when acting failed: the next attempt watches afresh
    }
  }

  /** Serves the pointer's active model and shadow, each loaded and checked first; a refused one changes nothing. */
  async #act({ pointer, revision }: PointerEntry): Promise<void> {
    const { holder, log } = this.#options;
    const active = (await this.#model(pointer.active)) ?? holder.active;
    // A shadow that is the active model itself would only score every batch twice.
    const shadowId = pointer.shadow === pointer.active ? null : pointer.shadow;
    let shadow: ScoringModel | undefined;
    try {
      shadow = shadowId === null ? undefined : await this.#model(shadowId);
    } catch (error) {
      this.#letGo(active); // loaded for this pointer, and not served: the next attempt loads it again
      throw error;
    }
    if (this.stopping) {
      this.#letGo(active);
      this.#letGo(shadow);
      return;
    }
    // What a rollback returns to stays loaded (kept in the same step, while it is still held).
    const previousId = pointer.previous === pointer.active ? null : pointer.previous;
    const previous = previousId === null ? undefined : holder.find(previousId);
    const before = { active: holder.active.metadata.id, shadow: holder.shadow?.metadata.id };
    const swapped = active !== holder.active || shadow !== holder.shadow;
    holder.serve(active, shadow, previous);
    if (swapped) {
      modelSwaps.inc();
      showServed(active.metadata.id, shadow?.metadata.id);
      log.info(
        { event: "model_swapped", before, active: active.metadata.id, shadow: shadow?.metadata.id ?? null, revision },
        `serving ${active.metadata.id}${shadow === undefined ? "" : ` with shadow ${shadow.metadata.id}`} (pointer revision ${revision}, ${pointer.reason} by ${pointer.by})`,
      );
    }
    this.#revision = revision;
    await this.#writeStatus();
    this.#resolveSynced();
    // A replica that started after the promote loads it now, in the background of serving.
    if (previousId !== null && previous === undefined) holder.keep(await this.#model(previousId));
  }

  /**
   * The served model with this id, else the version loaded and checked, else undefined when it is
   * refused. A failure to reach the registry is thrown: the follow starts again once it is back.
   */
  async #model(id: string): Promise<ScoringModel | undefined> {
    const served = this.#options.holder.find(id);
    if (served !== undefined) return served;
    if (this.#refused.has(id)) return undefined;
    let bundle: ModelBundle;
    try {
      bundle = await (this.#registry as ModelRegistry).get(id);
    } catch (error) {
      if (error instanceof ModelNotFoundError) return this.#refuse(id, "missing", error.message);
      if (error instanceof ModelRefusedError) return this.#refuse(id, "bundle", error.message);
      throw error;
    }
    let model: ScoringModel;
    try {
      model = await ScoringModel.fromArtifacts(bundleArtifacts(bundle, id), `model ${id}`, {
        backend: this.#options.backend,
      });
    } catch (error) {
      return this.#refuse(id, "load", `model ${id} cannot be loaded: ${(error as Error).message}`);
    }
    const golden = checkGoldenSet(model, bundle.golden);
    if (!golden.passed) {
      model.dispose();
      return this.#refuse(id, "golden", `model ${id} fails its golden set: ${describeGoldenCheck(golden)}`);
    }
    return model;
  }

  /** Disposes a model loaded here that the holder does not hold (serve or keep). */
  #letGo(model: ScoringModel | undefined): void {
    const { holder } = this.#options;
    if (model !== undefined && holder.find(model.metadata.id) !== model) model.dispose();
  }

  /** Remembers a refused version so it is logged and counted once, and the replica's status lists it. */
  #refuse(id: string, reason: RefusalReason, error: string): undefined {
    this.#refused.set(id, { id, error, at: new Date().toISOString() });
    if (this.#refused.size > MAX_REFUSALS_KEPT) this.#refused.delete(this.#refused.keys().next().value as string);
    modelRefusals.inc({ reason });
    this.#options.log.error(
      { event: "model_refused", model: id, reason, err: error, serving: this.#options.holder.active.metadata.id },
      `refused model ${id} (${reason}): ${error}; still serving ${this.#options.holder.active.metadata.id}`,
    );
    return undefined;
  }

  #refusals(): Refusal[] {
    return [...this.#refused.values()].slice(-MAX_REFUSALS_LISTED).reverse();
  }

  /** This replica's status in the registry; a failed write waits for the next change or tick. */
  async #writeStatus(): Promise<void> {
    const registry = this.#registry;
    if (registry === undefined || this.#revision === 0) return;
    const { holder, site, replica, log } = this.#options;
    try {
      await registry.putReplicaStatus({
        replica,
        site,
        active: holder.active.metadata.id,
        shadow: holder.shadow?.metadata.id ?? null,
        revision: this.#revision,
        refused: this.#refusals(),
        at: new Date().toISOString(),
      });
    } catch (error) {
      log.debug({ event: "replica_status_failed", err: (error as Error).message }, "replica status not written");
    }
  }
}
