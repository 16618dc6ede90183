import { z } from "zod";
import type { Logger } from "../../lib/infra/log.js";
import { HttpClient } from "../../lib/infra/http/client.js";
import { parseUntrustedJson } from "../../lib/infra/json.js";
import { filtersOverlap, topicMatches } from "../../lib/mqtt/topic-filter.js";
import { basicAuthHeader } from "../../lib/infra/http/basic-auth.js";

/** A function to invoke for a message, with the topic its answer is published to, if any. */
export interface Target {
  name: string;
  replyTopic: string | undefined;
}

/** What the connector learns of a function besides its routes: how many replicas serve it. */
export interface FunctionStatus {
  name: string;
  /** Desired replicas, as the gateway reports them. */
  replicas: number;
  /**
   * Replicas ready for requests. OpenFaaS omits the field when it is 0 (omitempty in faas-provider's
   * FunctionStatus), so absent means none.
   */
  availableReplicas: number;
  labels: Record<string, string>;
}

const GatewayFunctions = z.array(
  z.object({
    name: z.string(),
    annotations: z.record(z.string(), z.string()).nullish(),
    labels: z.record(z.string(), z.string()).nullish(),
    replicas: z.number().int().min(0).nullish(),
    availableReplicas: z.number().int().min(0).nullish(),
  }),
);

interface Route {
  filter: string;
  target: Target;
}

/**
 * Which functions a topic goes to. From the gateway's /system/functions (`topic` annotation, comma
 * separated, MQTT wildcards allowed; `reply-topic` optional), refreshed periodically and kept as
 * it was while the gateway is unreachable; or from a static mapping. `onChange` hears of every
 * change, so that messages held for want of a route go as soon as one appears. With the gateway it
 * also keeps each function's replicas (`onStatus` hears of every refresh): the connector's
 * concurrency per function follows them. Static routes know no replicas.
 */
export class FunctionDirectory {
  #routes: Route[] = [];
  readonly #cache = new Map<string, Target[]>();
  #timer: NodeJS.Timeout | undefined;
  #ready = false;
  #stopped = false;
  #lastError: string | undefined;
  #statuses = new Map<string, FunctionStatus>();
  /** When the last answer from the gateway was asked for (ms since the epoch). */
  #refreshedAt = 0;
  readonly #gateway: HttpClient;

  constructor(
    private readonly options: {
      gatewayUrl: string;
      basicAuth: { user: string; password: string } | undefined;
      staticFunctions: Map<string, string[]> | undefined;
      refreshMs: number;
      log: Logger;
      onChange?: () => void;
      /** Every function's status after each successful refresh. */
      onStatus?: (statuses: ReadonlyMap<string, FunctionStatus>) => void;
    },
  ) {
    this.#gateway = new HttpClient({ baseUrl: options.gatewayUrl, maxSockets: 1 });
    if (options.staticFunctions !== undefined) {
      this.#routes = [...options.staticFunctions].flatMap(([filter, names]) =>
        names.map((name) => ({ filter, target: { name, replyTopic: undefined } })),
      );
      this.#ready = true;
    }
  }

  /** True once a mapping is known (static, or the gateway answered once). */
  get ready(): boolean {
    return this.#ready;
  }

  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** The functions as of the last refresh; empty with static routes. */
  get statuses(): ReadonlyMap<string, FunctionStatus> {
    return this.#statuses;
  }

  /** When the request behind the current statuses was sent (0: never). */
  get refreshedAt(): number {
    return this.#refreshedAt;
  }

  /** The functions some route sends messages to. */
  get routedFunctions(): Set<string> {
    return new Set(this.#routes.map((r) => r.target.name));
  }

  get functionCount(): number {
    return new Set(this.#routes.map((r) => r.target.name)).size;
  }

  /** The functions for a topic; cached per topic until the routes change. */
  targets(topic: string): Target[] {
    let targets = this.#cache.get(topic);
    if (targets === undefined) {
      const seen = new Set<string>();
      targets = this.#routes
        .filter((r) => topicMatches(r.filter, topic) && !seen.has(r.target.name) && seen.add(r.target.name))
        .map((r) => r.target);
      if (this.#cache.size > 10_000) this.#cache.clear(); // topics with device ids in them are unbounded
      this.#cache.set(topic, targets);
    }
    return targets;
  }

  /** The topic filters of a function's routes. */
  filtersOf(name: string): string[] {
    return this.#routes.filter((r) => r.target.name === name).map((r) => r.filter);
  }

  /** The subscribed filters that no route serves: their messages would have nowhere to go. */
  unrouted(filters: readonly string[]): string[] {
    return filters.filter((f) => !this.#routes.some((r) => filtersOverlap(f, r.filter)));
  }

  /**
   * Resolves after the first lookup, whether or not the gateway answered; keeps refreshing until
   * stop(), every second until the gateway first answers and every `refreshMs` after that.
   */
  async start(): Promise<void> {
    if (this.options.staticFunctions !== undefined) return;
    const next = async () => {
      await this.refresh();
      if (this.#stopped) return;
      this.#timer = setTimeout(
        () => void next(),
        this.#ready ? this.options.refreshMs : Math.min(this.options.refreshMs, 1_000),
      );
      this.#timer.unref();
    };
    await next();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#gateway.close();
  }

  async refresh(): Promise<void> {
    const headers: Record<string, string> = {};
    if (this.options.basicAuth !== undefined) {
      headers.authorization = basicAuthHeader(this.options.basicAuth);
    }
    const askedAt = Date.now();
    try {
      const answer = await this.#gateway.request({
        method: "GET",
        path: "/system/functions",
        headers,
        timeoutMs: 5_000,
      });
      if (answer.status !== 200)
        throw new Error(`the gateway answered ${answer.status} to GET /system/functions: ${answer.body.slice(0, 200)}`);
      const functions = GatewayFunctions.parse(parseUntrustedJson(answer.body));
      const routes = functions.flatMap((fn) =>
        (fn.annotations?.topic ?? "")
          .split(",")
          .map((t) => t.trim())
          .filter((t) => t !== "")
          .map((filter) => ({ filter, target: { name: fn.name, replyTopic: fn.annotations?.["reply-topic"] } })),
      );
      const changed = !this.#ready || JSON.stringify(routes) !== JSON.stringify(this.#routes);
      this.#routes = routes;
      if (changed) this.#cache.clear();
      this.#ready = true;
      if (changed || this.#lastError !== undefined)
        this.options.log.info(
          { event: "functions_discovered", routes: routes.map((r) => `${r.filter} -> ${r.target.name}`) },
          `routing to ${this.functionCount} functions`,
        );
      this.#lastError = undefined;
      if (changed) this.options.onChange?.();
      this.#statuses = new Map(
        functions.map((fn) => [
          fn.name,
          {
            name: fn.name,
            replicas: fn.replicas ?? 0,
            availableReplicas: fn.availableReplicas ?? 0,
            labels: fn.labels ?? {},
          },
        ]),
      );
      this.#refreshedAt = askedAt;
      this.options.onStatus?.(this.#statuses);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (message !== this.#lastError)
        this.options.log.warn(
          { event: "discovery_failed", err: message },
          "cannot read functions from the gateway; keeping the last routes",
        );
      this.#lastError = message;
    }
  }
}
