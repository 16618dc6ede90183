import { z } from "zod";
import { HttpStatusError } from "../../lib/errors.js";
import type { HttpClient } from "../../lib/infra/http/client.js";
import { redactUrl } from "../../lib/mqtt/settings.js";
import type { Alert } from "./model.js";
import type { ExistingSilence, PostableSilence } from "./silences.js";

const SilencesAnswer = z.array(
  z.object({
    id: z.string(),
    status: z.object({ state: z.enum(["active", "pending", "expired"]) }),
    comment: z.string(),
    createdBy: z.string(),
    startsAt: z.string(),
    endsAt: z.string(),
    matchers: z.array(
      z.object({ name: z.string(), value: z.string(), isRegex: z.boolean(), isEqual: z.boolean().optional() }),
    ),
  }),
);

const SilenceCreated = z.object({ silenceID: z.string() });

const StatusAnswer = z.object({ uptime: z.string() });

/**
 * One Alertmanager's API v2, the calls fanwatch makes: post alerts, list, create or update, and
 * expire silences. Every call rejects on a status that is not 2xx with an HttpStatusError (its
 * `status` says whether trying again can help) and on a network failure or timeout with the
 * client's error.
 */
export class AlertmanagerApi {
  /** The URL without credentials, for logs and errors. */
  readonly name: string;
  readonly #base: URL;

  constructor(
    url: string,
    private readonly http: HttpClient,
    private readonly timeoutMs: number,
  ) {
    this.#base = new URL(url);
    this.name = redactUrl(url).replace(/\/$/, "");
  }

  async postAlerts(alerts: Alert[]): Promise<void> {
    await this.#call("POST", "/api/v2/alerts", alerts);
  }

  /** When it started (its status's `uptime`): a new value means it restarted and lost the alerts it held. */
  async startedAt(): Promise<string> {
    return StatusAnswer.parse(JSON.parse(await this.#call("GET", "/api/v2/status"))).uptime;
  }

  async silences(): Promise<ExistingSilence[]> {
    const body = await this.#call("GET", "/api/v2/silences");
    const parsed = SilencesAnswer.safeParse(JSON.parse(body));
    if (!parsed.success)
      throw new Error(`${this.name}/api/v2/silences answered a list fanwatch cannot read: ${parsed.error.message}`);
    return parsed.data.map((s) => ({
      id: s.id,
      state: s.status.state,
      comment: s.comment,
      createdBy: s.createdBy,
      startsAt: s.startsAt,
      endsAt: s.endsAt,
      matchers: s.matchers,
    }));
  }

  /** Creates a silence, or with `id` updates it; resolves to its id (a replacement gets a new one). */
  async postSilence(silence: PostableSilence): Promise<string> {
    const body = await this.#call("POST", "/api/v2/silences", silence);
    return SilenceCreated.parse(JSON.parse(body)).silenceID;
  }

  /** Expires a silence; one that is gone already counts as expired. */
  async expireSilence(id: string): Promise<void> {
    try {
      await this.#call("DELETE", `/api/v2/silence/${encodeURIComponent(id)}`);
    } catch (error) {
      // 0.25 answers an unknown id with 500 "not found", later versions with 404.
      if (error instanceof HttpStatusError && /not found/i.test(error.message)) return;
      throw error;
    }
  }

  async #call(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<string> {
    const url = new URL(this.#base.pathname.replace(/\/$/, "") + path, this.#base);
    const answer = await this.http.request({
      method,
      url,
      timeoutMs: this.timeoutMs,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
    });
    if (answer.status < 200 || answer.status > 299)
      throw new HttpStatusError(
        answer.status,
        `${method} ${this.name}${path} answered ${answer.status}: ${answer.body.trim().slice(0, 300)}`,
      );
    return answer.body;
  }
}
