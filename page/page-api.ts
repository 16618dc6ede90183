import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import type { HttpClient } from "../lib/infra/http/client.js";
import { sendErrorCode } from "../lib/infra/http/error-answer.js";
import { readPostedJson } from "./posted-json.js";
import type { Logger } from "../lib/infra/log.js";
import { signUser, USER_HEADER } from "../lib/infra/signed-user.js";
import type { Access, Visitor } from "./access/access.js";
import { csrfRefusal } from "./access/origin.js";
import type { FanRegistry } from "../lib/registry/registry.js";
import { FansApi, mayManageFans } from "./fans-api.js";
import { ModelsApi } from "./models-api.js";
import type { ModelsLink } from "./models-link.js";

/** A health action is a few fields and a note: a body beyond this is not one. */
export const ACTION_BODY_LIMIT = 16 * 1024;

/** An action is a JSON object; health checks its fields (the page adds only `by`). */
const ActionSchema = z.record(z.string(), z.unknown());

export interface PageApiOptions {
  /** The health function: `<gateway>/function/health`. */
  healthUrl: string;
  /** PAGE_USER_SECRET: when set, every call to health carries the signed-in user, signed with it. */
  userSecret?: string | undefined;
  client: HttpClient;
  /** One call to health, from sending to the last byte. @default 10000 */
  timeoutMs?: number;
  log: Logger;
  /** The fan registry the Fans panel manages (/ui/api/fans); none: the panel says the page has no registry. */
  registry?: FanRegistry | (() => FanRegistry | undefined) | undefined;
  /** The model registry the Models panel reads (/ui/api/models); none: the panel says score serves MODEL_DIR. */
  models?: ModelsLink | undefined;
}

/**
 * The page's API for the browser (docs/page.md, "The page's API"), same origin as /ui/:
 * who is signed in (`GET /ui/api/session`), health's actions in the signed-in user's name
 * (`POST /ui/api/health`), and health's history and evidence (`GET /ui/api/history`, `/ui/api/evidence`).
 * The browser never calls health itself: only the page holds the secret that names the user.
 */
export class PageApi {
  readonly #access: Access;
  readonly #options: PageApiOptions;
  readonly #healthUrl: string;
  readonly #fans: FansApi;
  readonly #models: ModelsApi;

  constructor(access: Access, options: PageApiOptions) {
    this.#access = access;
    this.#options = options;
    this.#fans = new FansApi(access, options.registry, options.log);
    this.#models = new ModelsApi(access, options.models, options.log);
    this.#healthUrl = options.healthUrl.replace(/\/+$/, "");
  }

  /** Serves /ui/api/session, /ui/api/health, /ui/api/history, /ui/api/evidence, /ui/api/fans and /ui/api/models; false for any other path. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = new URL(req.url ?? "/", "http://page");
    const path = url.pathname;
    // Once the path is ours the answer is ours too, a 405 included: true, or the caller answers again.
    if (path === "/ui/api/session") {
      if (this.#only("GET", req, res)) this.#session(req, res);
      return true;
    }
    if (path === "/ui/api/health") {
      if (this.#only("POST", req, res)) this.#act(req, res);
      else req.resume();
      return true;
    }
    if (this.#fans.handle(req, res)) return true;
    if (this.#models.handle(req, res)) return true;
    if (path === "/ui/api/history" || path === "/ui/api/evidence") {
      if (!this.#only("GET", req, res)) return true;
      const visitor = this.#signedIn(req, res);
      if (visitor !== undefined) void this.#forward(res, "GET", `${this.#healthUrl}/${path.slice(8)}${url.search}`);
      return true;
    }
    return false;
  };

  /** True to go on; false (the answer sent) for another method. */
  #only(method: "GET" | "POST", req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method === method || (method === "GET" && req.method === "HEAD")) return true;
    sendErrorCode(res, "FANWATCH_METHOD_NOT_ALLOWED", `${req.method} is not served here; use ${method}`, {
      allow: method,
    });
    return false;
  }

  #session(req: IncomingMessage, res: ServerResponse): true {
    const visitor = this.#access.visitor(req);
    sendJson(res, 200, {
      signIn: this.#access.mode,
      user: visitor?.user ?? null,
      canAct: visitor?.canAct ?? false,
      // The Fans panel: admins (sign-in off: whoever uses this machine), and only where there is a registry.
      canManageFans: visitor !== undefined && mayManageFans(visitor),
      registry: this.#options.registry !== undefined,
      csrf: visitor?.csrf ?? "",
    });
    return true;
  }

  /** The visitor, or undefined having answered 401: sign-in is on and this request is not signed in. */
  #signedIn(req: IncomingMessage, res: ServerResponse): Visitor | undefined {
    const visitor = this.#access.visitor(req);
    if (visitor === undefined)
      sendErrorCode(res, "FANWATCH_UNAUTHENTICATED", "sign in first: /ui/signin", { "cache-control": "no-store" });
    return visitor;
  }

  #act(req: IncomingMessage, res: ServerResponse): true {
    const visitor = this.#signedIn(req, res);
    if (visitor === undefined) return true;
    const forged = csrfRefusal(req.headers, visitor.csrf);
    if (forged !== undefined) {
      this.#options.log.warn({ event: "csrf_refused", path: "/ui/api/health", reason: forged }, "action refused");
      sendErrorCode(res, "FANWATCH_CSRF_REFUSED", `action refused: ${forged}`);
      req.resume();
      return true;
    }
    if (!visitor.canAct) {
      sendErrorCode(
        res,
        "FANWATCH_FORBIDDEN",
        `${visitor.user?.name ?? "you"} (${visitor.user?.role ?? "viewer"}) may see but not act`,
      );
      req.resume();
      return true;
    }
    this.#readAction(req, res)
      .then((action) => {
        if (action === undefined) return;
        // Signed in: the action is the user's, whatever the body says. Signed out (sign-in off): `by` as typed.
        const body = JSON.stringify(visitor.user === null ? action : { ...action, by: visitor.user.name });
        const headers: Record<string, string> = { "content-type": "application/json" };
        const secret = this.#options.userSecret;
        // Signed with the exact bytes sent: the header cannot be replayed with another action.
        if (secret !== undefined && visitor.user !== null) headers[USER_HEADER] = signUser(visitor.user, secret, body);
        return this.#forward(res, "POST", this.#healthUrl, body, headers);
      })
      .catch((error: unknown) => {
        // Never left to crash the process: logged, and the client told if it still listens.
        this.#options.log.error({ event: "action_error", err: String(error) }, "action failed unexpectedly");
        if (!res.headersSent) sendErrorCode(res, "FANWATCH_FUNCTION_UNAVAILABLE", "the action could not be passed on");
      });
    return true;
  }

  /** Ends the connections to health. */
  close(): void {
    this.#options.client.close();
  }

  /** The posted action, or undefined having answered why it is not one. */
  async #readAction(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown> | undefined> {
    const posted = await readPostedJson(
      req,
      res,
      ACTION_BODY_LIMIT,
      "a health action ({deviceID, alarmId, action, …})",
    );
    if (posted === undefined) return undefined;
    const parsed = posted.json;
    const action = ActionSchema.safeParse(parsed);
    if (!action.success) {
      sendErrorCode(
        res,
        "FANWATCH_INPUT_INVALID",
        "the body is not a JSON object: post a health action ({deviceID, alarmId, action, …})",
      );
      return undefined;
    }
    return action.data;
  }

  /** Calls health and passes its status and body back; health out of reach is a 502. */
  async #forward(
    res: ServerResponse,
    method: "GET" | "POST",
    url: string,
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<void> {
    try {
      const answer = await this.#options.client.request({
        method,
        url,
        headers,
        ...(body === undefined ? {} : { body }),
        timeoutMs: this.#options.timeoutMs ?? 10_000,
      });
      res
        .writeHead(answer.status, { "content-type": "application/json", "cache-control": "no-store" })
        .end(answer.body);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      this.#options.log.warn({ event: "health_unreachable", err: why }, "the page could not reach health");
      if (!res.headersSent)
        sendErrorCode(res, "FANWATCH_FUNCTION_UNAVAILABLE", `the health function did not answer: ${why}`);
    }
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(body));
}
