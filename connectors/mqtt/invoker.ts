import { FANWATCH_CONNECTOR } from "../../lib/domain/dead-letter.js";
import { isRetryableStatus } from "../../lib/infra/retry.js";
import type { ConnectorConfig } from "./config.js";
import type { Target } from "./directory.js";
import { HttpClient } from "../../lib/infra/http/client.js";
import type { ConnectorMetrics } from "./metrics.js";

/**
 * What an invocation came to. `answered`: 2xx. `rejected`: the function refused the messages
 * themselves (400, 413, 422, …): sending them again would get the same answer. `failed`: the
 * function or the way to it is not working right now: try again later, never dead-letter.
 */
export type Outcome =
  { kind: "answered"; body: string } | { kind: "rejected"; reason: string } | { kind: "failed"; reason: string };

/**
 * Statuses that say nothing about the message: 408/429 and 5xx (busy, down), 401/403 (our
 * credentials) and 404 (the function is not deployed, e.g. between a removal and the next route
 * refresh). Every other 4xx is the message's fault.
 */
function isOutage(status: number): boolean {
  return isRetryableStatus(status) || status === 401 || status === 403 || status === 404;
}

/** Sends one batch to one function through the gateway, once, and classifies the answer. */
export class Invoker {
  readonly #gateway: HttpClient;
  readonly #timeout: string;

  constructor(
    private readonly config: ConnectorConfig,
    private readonly metrics: ConnectorMetrics,
  ) {
    this.#gateway = new HttpClient({ baseUrl: config.gatewayUrl, maxSockets: config.maxInFlightTotal });
    this.#timeout = String(config.timeoutMs);
  }

  async invoke(target: Target, topic: string, body: string | Buffer): Promise<Outcome> {
    const path = this.config.asyncInvoke ? `/async-function/${target.name}` : `/function/${target.name}`;
    // X-Timeout-Ms: the function's whole budget for this attempt. predict gives up (503) before it
    // runs out, so that a retry never overlaps a first attempt still at work.
    const headers: Record<string, string> = {
      "content-type": this.config.contentType,
      "x-topic": topic,
      "x-timeout-ms": this.#timeout,
      "x-connector": FANWATCH_CONNECTOR,
    };
    if (this.config.asyncInvoke && this.config.callbackUrl !== undefined)
      headers["x-callback-url"] = this.config.callbackUrl;
    const stop = this.metrics.latency.startTimer({ function: target.name });
    try {
      const answer = await this.#gateway.request({
        method: "POST",
        path,
        headers,
        body,
        timeoutMs: this.config.timeoutMs,
      });
      this.metrics.invocations.inc({ function: target.name, code: String(answer.status) });
      if (answer.status >= 200 && answer.status < 300) return { kind: "answered", body: answer.body };
      const reason = `${target.name} answered ${answer.status}: ${answer.body.slice(0, 300)}`;
      return { kind: isOutage(answer.status) ? "failed" : "rejected", reason };
    } catch (error) {
      this.metrics.invocations.inc({ function: target.name, code: "0" });
      return { kind: "failed", reason: `${target.name}: ${error instanceof Error ? error.message : String(error)}` };
    } finally {
      stop();
    }
  }

  close(): void {
    this.#gateway.close();
  }
}
