import { z } from "zod";
import { ExplainedVerdictSchema, VerdictSchema } from "../../lib/domain/prediction.js";
import { HttpClient, HttpTimeoutError } from "../../lib/infra/http/client.js";
import { parseUntrustedJson } from "../../lib/infra/json.js";
import { isRetryableStatus } from "../../lib/infra/retry.js";
import { ScoreRejectedError, ScoreUnavailableError } from "../../lib/errors.js";

/**
 * Score's batch answer. With a shadow loaded (docs/models.md, "Shadow") it also carries the
 * shadow's verdicts on the same readings and score's own compute time for each model.
 */
const ScoreBatchAnswer = z.object({
  model: z.string().optional(),
  predictions: z.array(VerdictSchema),
  shadow: z.object({ model: z.string().min(1), predictions: z.array(VerdictSchema) }).optional(),
  timing: z
    .object({ activeMs: z.number().finite().nonnegative(), shadowMs: z.number().finite().nonnegative() })
    .optional(),
});
export type ScoreBatchAnswer = z.infer<typeof ScoreBatchAnswer>;

const ExplainedBatchAnswer = z.object({ model: z.string().optional(), predictions: z.array(ExplainedVerdictSchema) });
export type ExplainedBatchAnswer = z.infer<typeof ExplainedBatchAnswer>;

export interface ScoreClientOptions {
  /** Keep-alive connections to the score function. @default 16 */
  connections?: number;
  /** The longest a call may take, whatever time the caller has left. @default 5000 */
  timeoutMs?: number;
}

/**
 * Calls the score function's batch API (`{"instances": [...]}`) over keep-alive connections (the
 * one HTTP client, lib/infra/http/client.ts), one request for all the readings of an invocation.
 * One attempt: the caller's caller (the MQTT connector) is the one layer that retries, so that
 * retries do not multiply across layers.
 */
export class ScoreClient {
  readonly #http: HttpClient;
  readonly #url: URL;
  readonly #timeoutMs: number;

  constructor(url: string, options: ScoreClientOptions = {}) {
    this.#url = new URL(url);
    this.#http = new HttpClient({ maxSockets: options.connections ?? 16, idleTimeoutMs: 30_000 });
    this.#timeoutMs = options.timeoutMs ?? 5_000;
  }

  /**
   * Scores the readings, giving up after the client's timeout or when `signal` (the caller's
   * deadline) aborts, whichever comes first; in the second case it throws the signal's reason.
   */
  score(instances: number[][], signal?: AbortSignal): Promise<ScoreBatchAnswer> {
    return this.#post({ instances }, instances.length, ScoreBatchAnswer, "predictions", signal);
  }

  /**
   * Scores the readings and explains each (`"explain": true`): about 8 to 14 times the score
   * function's work per reading (16 model rows instead of one), so ask only for the readings that
   * need it. Same timeout, abort and error rules as `score`.
   */
  explain(instances: number[][], signal?: AbortSignal): Promise<ExplainedBatchAnswer> {
    // A score function older than explanations ignores "explain" and answers plain predictions.
    return this.#post(
      { instances, explain: true },
      instances.length,
      ExplainedBatchAnswer,
      "explained predictions (is it older than explanations?)",
      signal,
    );
  }

  async #post<T extends { predictions: unknown[] }>(
    body: object,
    count: number,
    schema: z.ZodType<T>,
    expected: string,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    let status: number;
    let text: string;
    try {
      ({ status, body: text } = await this.#http.request({
        url: this.#url,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        timeoutMs: this.#timeoutMs,
        signal,
      }));
    } catch (error) {
      if (signal?.aborted === true) throw signal.reason;
      throw new ScoreUnavailableError(`the score function is unreachable: ${describe(error, this.#timeoutMs)}`, {
        cause: error,
      });
    }
    if (isRetryableStatus(status))
      throw new ScoreUnavailableError(`the score function answered ${status}: ${text.slice(0, 200)}`);
    if (status !== 200)
      throw new ScoreRejectedError(`the score function refused the request: ${status}: ${text.slice(0, 200)}`);
    const answer = schema.safeParse(safeJson(text));
    if (!answer.success)
      throw new ScoreRejectedError(
        `the score function answered something other than ${expected}: ${text.slice(0, 200)}`,
      );
    if (answer.data.predictions.length !== count) {
      throw new ScoreRejectedError(
        `the score function answered ${answer.data.predictions.length} predictions for ${count} readings`,
      );
    }
    return answer.data;
  }

  /** Ends the connections; predict closes it once its calls are answered. */
  close(): void {
    this.#http.close();
  }
}

function describe(error: unknown, timeoutMs: number): string {
  if (error instanceof HttpTimeoutError) return `no answer within ${timeoutMs} ms`;
  return error instanceof Error ? error.message : String(error);
}

/** The answer as JSON, or undefined (the schema then refuses it): a broken score function is not to be trusted either. */
function safeJson(text: string): unknown {
  try {
    return parseUntrustedJson(text);
  } catch {
    return undefined;
  }
}
