import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";
import { z } from "zod";
import { backoffDelay } from "./backoff.js";

const ScoreBatchAnswer = z.object({
  model: z.string().optional(),
  predictions: z.array(z.object({ fault: z.union([z.literal(0), z.literal(1)]), probability: z.number() })),
});
export type ScoreBatchAnswer = z.infer<typeof ScoreBatchAnswer>;

export interface ScoreClientOptions {
  /** Keep-alive connections to the score function. @default 16 */
  connections?: number;
  /** Per attempt. @default 5000 */
  timeoutMs?: number;
  /** Attempts after the first on 429, 5xx, timeouts and connection errors. @default 3 */
  retries?: number;
  /** First backoff; doubles each retry, with jitter. @default 100 */
  backoffMs?: number;
}

/** Failure to score after every retry; the caller answers 5xx so that its caller retries later. */
export class ScoreUnavailableError extends Error {
  override readonly name = "ScoreUnavailableError";
  readonly status = 503;
}

/** The score function refused the request (4xx); a bug on our side, answered as a 502. */
export class ScoreRejectedError extends Error {
  override readonly name = "ScoreRejectedError";
  readonly status = 502;
}

/**
 * Calls the score function's batch API (`{"instances": [...]}`) over a keep-alive pool, one
 * request for all the readings of an invocation.
 */
export class ScoreClient {
  readonly #pool: Pool;
  readonly #path: string;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #backoffMs: number;

  constructor(url: string, options: ScoreClientOptions = {}) {
    const parsed = new URL(url);
    this.#pool = new Pool(parsed.origin, { connections: options.connections ?? 16, keepAliveTimeout: 30_000 });
    this.#path = `${parsed.pathname}${parsed.search}`;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#retries = options.retries ?? 3;
    this.#backoffMs = options.backoffMs ?? 100;
  }

  async score(instances: number[][]): Promise<ScoreBatchAnswer> {
    const body = JSON.stringify({ instances });
    let lastError = "";
    for (let attempt = 0; attempt <= this.#retries; attempt++) {
      if (attempt > 0) await sleep(backoffDelay(this.#backoffMs, attempt));
      try {
        const response = await this.#pool.request({
          path: this.#path,
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          headersTimeout: this.#timeoutMs,
          bodyTimeout: this.#timeoutMs,
        });
        const text = await response.body.text();
        if (response.statusCode === 200) {
          const answer = ScoreBatchAnswer.parse(JSON.parse(text));
          if (answer.predictions.length !== instances.length) throw new Error(`score answered ${answer.predictions.length} predictions for ${instances.length} readings`);
          return answer;
        }
        lastError = `score answered ${response.statusCode}: ${text.slice(0, 200)}`;
        // A 4xx other than 429 means our request is wrong: retrying will not help.
        if (response.statusCode !== 429 && response.statusCode < 500) throw new ScoreRejectedError(lastError);
      } catch (error) {
        if (error instanceof ScoreRejectedError) throw error;
        lastError = error instanceof Error ? error.message : String(error);
      }
    }
    throw new ScoreUnavailableError(`the score function failed ${this.#retries + 1} times: ${lastError}`);
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}
