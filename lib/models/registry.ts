import { JetStreamApiCodes, JetStreamApiError, StorageType, type JetStreamClient } from "@nats-io/jetstream";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import { Objm, type ObjectInfo, type ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import type { z } from "zod";
import { ModelNotFoundError, ModelPointerMovedError, ModelRefusedError, RegistryUnavailableError } from "../errors.js";
import { EvaluationMetricsSchema, type EvaluationMetrics } from "../inference/metadata.js";
import { bundleId, decodeBundle, encodeBundle, loadBundleModel } from "./bundle.js";
import {
  ACTIVE_BUCKET,
  ACTIVE_HISTORY,
  comparisonKey,
  comparisonKeys,
  MODELS_BUCKET,
  pointerKey,
  replicaKey,
  replicaKeys,
} from "./names.js";
import {
  ActivePointerSchema,
  ReplicaStatusSchema,
  ShadowComparisonSchema,
  type ActivePointer,
  type ModelBundle,
  type ReplicaStatus,
  type ShadowComparison,
} from "./schemas.js";

/** A pointer with its KV revision: the revision a compare-and-set names. */
export interface PointerEntry {
  pointer: ActivePointer;
  revision: number;
}

/** One stored version as `fanwatch model list` shows it: no weights. */
export interface ModelVersion {
  id: string;
  /** When it was pushed (the object's time). */
  created: string;
  /** When it was trained (its metadata's createdAt). */
  trained: string;
  parent: string | null;
  /** Who pushed it. */
  by: string;
  /** Its trainer's held-out metrics; null if the object's metadata does not hold them (put by hand). */
  metrics: EvaluationMetrics | null;
  /** The stored bundle's bytes. */
  size: number;
}

/** A stream of a site's pointer values, the current one first; stop() ends it. */
export interface PointerWatch extends AsyncIterable<PointerEntry> {
  stop(): void;
}

export interface RegistryOptions {
  /** Copies of each bucket in a NATS cluster when it is created here (NATS_KV_REPLICAS). @default 1 */
  replicas?: number;
  /** TFJS_BACKEND, for the load and golden check of a pushed bundle. */
  backend?: string;
}

/**
 * The model registry (docs/models.md, "Versions and the registry") over one NATS connection:
 * bundles in the Object Store bucket `fan_models` (one object per version, named by its id), and
 * in the KV bucket `fan_models_active` each site's active pointer (with its history), each score
 * replica's status and each shadow's comparisons. Both buckets are made on file storage when
 * missing; existing ones are used as they are.
 *
 * An object is written chunks first and its name last (one message holding its size and
 * SHA-256), so a reader never sees a bundle half-written; a bundle's bytes are checked against
 * its id again on every read all the same, since the id is what a replica trusts.
 */
export class ModelRegistry {
  readonly #store: ObjectStore;
  readonly #kv: KV;
  readonly #backend: string | undefined;

  private constructor(store: ObjectStore, kv: KV, options: RegistryOptions) {
    this.#store = store;
    this.#kv = kv;
    this.#backend = options.backend;
  }

  /** Opens the buckets over `nats` (a JetStream client to give its request timeout, or a plain connection). */
  static async open(nats: NatsConnection | JetStreamClient, options: RegistryOptions = {}): Promise<ModelRegistry> {
    const replicas = options.replicas ?? 1;
    try {
      const [store, kv] = await Promise.all([
        new Objm(nats).create(MODELS_BUCKET, { storage: StorageType.File, replicas }),
        new Kvm(nats).create(ACTIVE_BUCKET, { history: ACTIVE_HISTORY, storage: StorageType.File, replicas }),
      ]);
      return new ModelRegistry(store, kv, options);
    } catch (error) {
      throw new RegistryUnavailableError(
        `cannot open the model registry (buckets ${MODELS_BUCKET}, ${ACTIVE_BUCKET}): ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /**
   * Stores `bundle` under its id, unless a version with that id is stored already (the same bytes:
   * nothing to do). A bundle that cannot be loaded or fails its own golden set is refused
   * (ModelRefusedError) and never stored.
   */
  async push(bundle: ModelBundle, by: string): Promise<{ id: string; created: boolean }> {
    const bytes = encodeBundle(bundle);
    const id = bundleId(bytes);
    if (await this.#exists(id)) return { id, created: false };
    const { model } = await loadBundleModel(decodeBundle(bytes, id), id, { backend: this.#backend });
    model.dispose();
    const metadata: Record<string, string> = {
      parent: bundle.parent ?? "",
      by,
      trained: bundle.metadata.createdAt,
      metrics: JSON.stringify(bundle.metadata.metrics),
    };
    try {
      // previousRevision 0: only if no object has this name, so two pushers of one bundle store it once.
      await this.#store.putBlob({ name: id, metadata }, bytes, { previousRevision: 0 });
    } catch (error) {
      if (isConflict(error) && (await this.#exists(id))) return { id, created: false };
      throw unavailable(`cannot store model ${id}`, error);
    }
    return { id, created: true };
  }

  async #exists(id: string): Promise<boolean> {
    const info = await this.#info(id);
    return info !== null && !info.deleted;
  }

  async #info(id: string): Promise<ObjectInfo | null> {
    try {
      return await this.#store.info(id);
    } catch (error) {
      throw unavailable(`cannot read model ${id}`, error);
    }
  }

  /** The bundle stored as `id`, its bytes checked against the id (ModelRefusedError), or ModelNotFoundError. */
  async get(id: string): Promise<ModelBundle> {
    let bytes: Uint8Array | null;
    try {
      bytes = await this.#store.getBlob(id);
    } catch (error) {
      // The Object Store checks the chunks against the digest it wrote with the name.
      if (error instanceof Error && error.message.includes("digests do not match"))
        throw new ModelRefusedError(
          `model ${id} refused: its stored chunks are corrupt (${error.message.split("\n")[0]})`,
          {
            cause: error,
          },
        );
      throw unavailable(`cannot read model ${id}`, error);
    }
    if (bytes === null) throw new ModelNotFoundError(`the model registry has no model ${id}: fanwatch model list`);
    return decodeBundle(bytes, id);
  }

  /** Every stored version, oldest first. */
  async list(): Promise<ModelVersion[]> {
    let infos: ObjectInfo[];
    try {
      infos = await this.#store.list();
    } catch (error) {
      throw unavailable("cannot list the models", error);
    }
    return infos
      .filter((info) => !info.deleted)
      .map(versionOf)
      .sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : 0));
  }

  /** The version `id` as list() shows it, or undefined. */
  async version(id: string): Promise<ModelVersion | undefined> {
    const info = await this.#info(id);
    return info === null || info.deleted ? undefined : versionOf(info);
  }

  /** The site's pointer and its revision, or undefined before the first model. */
  async pointer(site: string): Promise<PointerEntry | undefined> {
    const entry = await this.#read(pointerKey(site), `the model pointer of site ${site}`);
    return entry === undefined ? undefined : pointerOf(entry);
  }

  /**
   * Writes the site's pointer if it is still at `expectedRevision` (0: if it has none), and returns
   * the new revision. A pointer that moved on is left as it is: ModelPointerMovedError.
   */
  async setPointer(site: string, pointer: ActivePointer, expectedRevision: number): Promise<number> {
    const data = JSON.stringify(ActivePointerSchema.parse(pointer));
    try {
      return expectedRevision === 0
        ? await this.#kv.create(pointerKey(site), data)
        : await this.#kv.update(pointerKey(site), data, expectedRevision);
    } catch (error) {
      if (isConflict(error))
        throw new ModelPointerMovedError(
          `the model pointer of site ${site} changed since it was read (revision ${expectedRevision} is not the latest): nothing was changed; look again (fanwatch model list) and retry`,
          { cause: error },
        );
      throw unavailable(`cannot write the model pointer of site ${site}`, error);
    }
  }

  /**
   * On a fresh site, makes `shipped` its first version and active model; returns the pointer
   * either way. The pointer is created only if the site has none (KV create), so replicas starting
   * together store one version (the same bytes) and make one pointer; each gets that pointer.
   */
  async bootstrap(site: string, shipped: ModelBundle, by: string): Promise<PointerEntry> {
    const existing = await this.pointer(site);
    if (existing !== undefined) return existing;
    const { id } = await this.push(shipped, by);
    const pointer: ActivePointer = {
      active: id,
      previous: null,
      shadow: null,
      reason: "first",
      by,
      at: new Date().toISOString(),
      forced: false,
      note: null,
    };
    try {
      return { pointer, revision: await this.setPointer(site, pointer, 0) };
    } catch (error) {
      if (!(error instanceof ModelPointerMovedError)) throw error;
      const winner = await this.pointer(site);
      if (winner === undefined) throw error;
      return winner;
    }
  }

  /**
   * The site's pointer as it changes, its current value first (nothing until there is one).
   * Values that are not pointers (written by hand) and deletions are skipped.
   */
  async watchPointer(site: string): Promise<PointerWatch> {
    const watch = await this.#kv.watch({ key: pointerKey(site), ignoreDeletes: true }).catch((error: unknown) => {
      throw unavailable(`cannot watch the model pointer of site ${site}`, error);
    });
    return {
      stop: () => watch.stop(),
      async *[Symbol.asyncIterator]() {
        for await (const entry of watch) {
          const value = pointerOf(entry);
          if (value !== undefined) yield value;
        }
      },
    };
  }

  /** The site's pointer values kept (ACTIVE_HISTORY), oldest first. */
  async history(site: string): Promise<PointerEntry[]> {
    const entries: PointerEntry[] = [];
    try {
      const history = await this.#kv.history({ key: pointerKey(site) });
      for await (const entry of history) {
        const value = entry.operation === "PUT" ? pointerOf(entry) : undefined;
        if (value !== undefined) entries.push(value);
      }
    } catch (error) {
      throw unavailable(`cannot read the model pointer history of site ${site}`, error);
    }
    return entries;
  }

  async putReplicaStatus(status: ReplicaStatus): Promise<void> {
    await this.#put(replicaKey(status.site, status.replica), ReplicaStatusSchema.parse(status));
  }

  /** Every replica status of the site, as each last wrote it. */
  async replicaStatuses(site: string): Promise<ReplicaStatus[]> {
    return this.#values(replicaKeys(site), ReplicaStatusSchema);
  }

  async putComparison(comparison: ShadowComparison): Promise<void> {
    const key = comparisonKey(comparison.site, comparison.shadow, comparison.replica);
    await this.#put(key, ShadowComparisonSchema.parse(comparison));
  }

  /** Each predict replica's comparison of the site's `shadow` against the active model. */
  async comparisons(site: string, shadow: string): Promise<ShadowComparison[]> {
    return this.#values(comparisonKeys(site, shadow), ShadowComparisonSchema);
  }

  async #put(key: string, value: unknown): Promise<void> {
    try {
      await this.#kv.put(key, JSON.stringify(value));
    } catch (error) {
      throw unavailable(`cannot write ${key}`, error);
    }
  }

  async #read(key: string, what: string): Promise<KvEntry | undefined> {
    try {
      const entry = await this.#kv.get(key);
      return entry === null || entry.operation !== "PUT" ? undefined : entry;
    } catch (error) {
      throw unavailable(`cannot read ${what}`, error);
    }
  }

  /** The values under a filter that parse with `schema`; others (written by hand) are skipped. */
  async #values<S extends z.ZodType>(filter: string, schema: S): Promise<z.output<S>[]> {
    const values: z.output<S>[] = [];
    try {
      const keys: string[] = [];
      for await (const key of await this.#kv.keys(filter)) keys.push(key);
      for (const key of keys.sort()) {
        const entry = await this.#kv.get(key);
        if (entry === null || entry.operation !== "PUT") continue;
        const parsed = schema.safeParse(jsonOf(entry));
        if (parsed.success) values.push(parsed.data);
      }
    } catch (error) {
      throw unavailable(`cannot read ${filter}`, error);
    }
    return values;
  }
}

function versionOf(info: ObjectInfo): ModelVersion {
  const meta = info.metadata ?? {};
  let metrics: EvaluationMetrics | null = null;
  try {
    const parsed = EvaluationMetricsSchema.safeParse(JSON.parse(meta["metrics"] ?? "null"));
    if (parsed.success) metrics = parsed.data;
  } catch {
    // Not JSON: an object put by hand; its metrics stay unknown.
  }
  return {
    id: info.name,
    created: info.mtime,
    trained: meta["trained"] ?? "",
    parent: meta["parent"] === undefined || meta["parent"] === "" ? null : meta["parent"],
    by: meta["by"] ?? "",
    metrics,
    size: info.size,
  };
}

function pointerOf(entry: KvEntry): PointerEntry | undefined {
  const parsed = ActivePointerSchema.safeParse(jsonOf(entry));
  return parsed.success ? { pointer: parsed.data, revision: entry.revision } : undefined;
}

function jsonOf(entry: KvEntry): unknown {
  try {
    return entry.json();
  } catch {
    return undefined;
  }
}

/** JetStream's "wrong last sequence": the key or object moved on since it was read. */
function isConflict(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
      error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

function unavailable(what: string, error: unknown): RegistryUnavailableError {
  return new RegistryUnavailableError(`${what}: ${(error as Error).message}`, { cause: error });
}
