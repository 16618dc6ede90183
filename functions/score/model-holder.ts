import type { ScoringModel } from "../../lib/inference/runtime.js";

/** The models one call scores with, taken once at its start; `release()` at its end (safe to repeat). */
export interface ModelLease {
  readonly active: ScoringModel;
  /** A candidate scoring next to the active model (docs/models.md, "Shadow"), if one is loaded. */
  readonly shadow: ScoringModel | undefined;
  release(): void;
}

/**
 * The models a score replica serves: the active one and, when the site has one, a shadow. Every
 * call (and every batch of the batcher) takes both once at its start, so a swap never changes the
 * model under a call in flight: swapping is one assignment between calls, and a model no longer
 * served is disposed when the last call that took it gives it back.
 */
export class ModelHolder {
  #active: ScoringModel;
  #shadow: ScoringModel | undefined;
  /** Kept loaded but not served: the model a rollback returns to, so that a rollback loads nothing. */
  #standby: ScoringModel | undefined;
  /** Calls in flight on each model that has any. */
  readonly #users = new Map<ScoringModel, number>();
  #closed = false;

  constructor(active: ScoringModel) {
    this.#active = active;
  }

  get active(): ScoringModel {
    return this.#active;
  }

  get shadow(): ScoringModel | undefined {
    return this.#shadow;
  }

  get standby(): ScoringModel | undefined {
    return this.#standby;
  }

  /** The model with this id that is served or kept on standby, if one is. */
  find(id: string): ScoringModel | undefined {
    return [this.#active, this.#shadow, this.#standby].find((model) => model?.metadata.id === id);
  }

  acquire(): ModelLease {
    const active = this.#active;
    const shadow = this.#shadow;
    this.#take(active);
    if (shadow !== undefined) this.#take(shadow);
    let released = false;
    return {
      active,
      shadow,
      release: () => {
        if (released) return;
        released = true;
        this.#giveBack(active);
        if (shadow !== undefined) this.#giveBack(shadow);
      },
    };
  }

  /** Runs `work` on the current models, giving them back however it ends. */
  use<T>(work: (lease: ModelLease) => T): T {
    const lease = this.acquire();
    try {
      return work(lease);
    } finally {
      lease.release();
    }
  }

  /**
   * Serves `active` and `shadow` from the next call on, and keeps `standby` loaded without serving
   * it (the model a rollback returns to). Models held before and not now are disposed at once if
   * no call holds them, else when the last one ends.
   */
  serve(active: ScoringModel, shadow: ScoringModel | undefined, standby: ScoringModel | undefined): void {
    if (this.#closed) {
      for (const model of [active, shadow, standby]) if (model !== undefined) this.#disposeIfIdle(model);
      return;
    }
    const before = [this.#active, this.#shadow, this.#standby];
    this.#active = active;
    this.#shadow = shadow;
    this.#standby = standby;
    for (const model of before) if (model !== undefined) this.#disposeIfIdle(model);
  }

  /** Keeps `model` on standby (undefined: none), serving what it serves. */
  keep(model: ScoringModel | undefined): void {
    this.serve(this.#active, this.#shadow, model);
  }

  /** Serves nothing more: the models are disposed now, or when the calls holding them end. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const model of [this.#active, this.#shadow, this.#standby])
      if (model !== undefined) this.#disposeIfIdle(model);
  }

  #take(model: ScoringModel): void {
    this.#users.set(model, (this.#users.get(model) ?? 0) + 1);
  }

  #giveBack(model: ScoringModel): void {
    const users = (this.#users.get(model) ?? 1) - 1;
    if (users > 0) {
      this.#users.set(model, users);
      return;
    }
    this.#users.delete(model);
    this.#disposeIfIdle(model);
  }

  #disposeIfIdle(model: ScoringModel): void {
    const held = !this.#closed && (model === this.#active || model === this.#shadow || model === this.#standby);
    if (!held && !this.#users.has(model)) model.dispose();
  }
}
