import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { errorAnswer } from "../lib/errors.js";
import { sendErrorCode } from "../lib/infra/http/error-answer.js";
import { readPostedJson } from "./posted-json.js";
import type { Logger } from "../lib/infra/log.js";
import type { FanRecord } from "../lib/registry/fan-record.js";
import type { FanRegistry } from "../lib/registry/registry.js";
import type { Access, Visitor } from "./access/access.js";
import { csrfRefusal } from "./access/origin.js";

/** A fan's details and an action: a few short fields. */
const FANS_BODY_LIMIT = 8 * 1024;

const text = (max: number) => z.string().trim().max(max).optional();
/** What the page's Fans panel posts; the id's own rules are the registry's (DeviceIdError). */
const FanActionSchema = z.discriminatedUnion("action", [
  z.object({
    action: z.literal("add"),
    id: z.string().trim().max(200),
    name: text(200),
    site: text(100),
    location: text(200),
    type: text(100),
    by: text(128),
  }),
  z.object({ action: z.literal("approve"), id: z.string().max(200), by: text(128) }),
  z.object({ action: z.literal("retire"), id: z.string().max(200), by: text(128) }),
]);
type FanAction = z.infer<typeof FanActionSchema>;

/** A record as the page shows it: never the MQTT password's hash. */
export type ListedFan = Omit<FanRecord, "mqttPasswordHash">;

/**
 * May this visitor manage the registry? Signed in, admins only; with sign-in off (loopback, as
 * under `fanwatch start`) whoever uses this machine, in the name they type, as with every action.
 */
export function mayManageFans(visitor: Visitor): boolean {
  return visitor.user === null ? visitor.canAct : visitor.user.role === "admin";
}

/**
 * The Fans panel's API (docs/page.md, "Fans"): `GET /ui/api/fans` lists the registry's pending and
 * active fans, `POST /ui/api/fans` adds, approves or retires (refusing a pending fan retires it),
 * in the signed-in admin's name. The registry's errors are answered with their codes
 * (FANWATCH_DEVICE_UNKNOWN 404, FANWATCH_DEVICE_ID_INVALID 400, …).
 */
export class FansApi {
  constructor(
    private readonly access: Access,
    /** A function: the registry opened in the background, undefined until it is (503 meanwhile). */
    private readonly registry: FanRegistry | (() => FanRegistry | undefined) | undefined,
    private readonly log: Logger,
  ) {}

  /** Serves /ui/api/fans; false for any other path. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (new URL(req.url ?? "/", "http://page").pathname !== "/ui/api/fans") return false;
    const get = req.method === "GET" || req.method === "HEAD";
    if (!get && req.method !== "POST") {
      sendErrorCode(res, "FANWATCH_METHOD_NOT_ALLOWED", `${req.method} is not served here; use GET or POST`, {
        allow: "GET, POST",
      });
      req.resume();
      return true;
    }
    const visitor = this.#admin(req, res, !get);
    if (visitor === undefined) {
      req.resume();
      return true;
    }
    if (this.registry === undefined) {
      sendErrorCode(res, "FANWATCH_NOT_IMPLEMENTED", "this page has no fan registry: set NATS_URL (docs/page.md)");
      req.resume();
      return true;
    }
    const registry = typeof this.registry === "function" ? this.registry() : this.registry;
    if (registry === undefined) {
      sendErrorCode(
        res,
        "FANWATCH_STORE_UNAVAILABLE",
        "the fan registry (NATS) cannot be read yet: the page tries again every 5 s",
      );
      req.resume();
      return true;
    }
    const work = get ? this.#list(registry, res) : this.#act(registry, visitor, req, res);
    work.catch((error: unknown) => {
      const answer = errorAnswer(error);
      if (res.headersSent) return void res.destroy();
      if (answer !== undefined) return void send(res, answer.status, answer.body);
      this.log.error({ event: "fans_api_error", err: String(error) }, "fans API failed unexpectedly");
      sendErrorCode(res, "FANWATCH_INTERNAL", "the registry could not be reached or answered unexpectedly");
    });
    return true;
  };

  /** The visitor if they may manage fans (and, for a POST, the request is no forgery); else undefined, answered. */
  #admin(req: IncomingMessage, res: ServerResponse, post: boolean): Visitor | undefined {
    const visitor = this.access.visitor(req);
    if (visitor === undefined) {
      sendErrorCode(res, "FANWATCH_UNAUTHENTICATED", "sign in first: /ui/signin", { "cache-control": "no-store" });
      return undefined;
    }
    if (post) {
      const forged = csrfRefusal(req.headers, visitor.csrf);
      if (forged !== undefined) {
        this.log.warn({ event: "csrf_refused", path: "/ui/api/fans", reason: forged }, "fan action refused");
        sendErrorCode(res, "FANWATCH_CSRF_REFUSED", `action refused: ${forged}`);
        return undefined;
      }
    }
    if (!mayManageFans(visitor)) {
      sendErrorCode(
        res,
        "FANWATCH_FORBIDDEN",
        `${visitor.user?.name ?? "you"} (${visitor.user?.role ?? "viewer"}) may not manage fans: admins only`,
      );
      return undefined;
    }
    return visitor;
  }

  async #list(registry: FanRegistry, res: ServerResponse): Promise<void> {
    const records = await registry.list();
    const fans = records.filter((r) => r.state !== "retired").map(listed);
    send(res, 200, { fans });
  }

  async #act(registry: FanRegistry, visitor: Visitor, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const action = await this.#read(req, res);
    if (action === undefined) return;
    // Signed in, the admin's name whatever the body says; sign-in off, the name typed.
    const by = visitor.user?.name ?? action.by ?? "";
    if (by === "") return sendErrorCode(res, "FANWATCH_INPUT_INVALID", "say who you are: by");
    const fan =
      action.action === "add"
        ? await registry.add(
            action.id,
            {
              ...(action.name === undefined ? {} : { name: action.name }),
              ...(action.site === undefined ? {} : { site: action.site }),
              ...(action.location === undefined ? {} : { location: action.location }),
              ...(action.type === undefined ? {} : { type: action.type }),
            },
            by,
          )
        : action.action === "approve"
          ? await registry.approve(action.id, by)
          : await registry.retire(action.id, by);
    this.log.info({ event: `fan_${action.action}`, deviceID: fan.id, by }, `fan ${fan.id}: ${action.action} by ${by}`);
    send(res, 200, { fan: listed(fan) });
  }

  async #read(req: IncomingMessage, res: ServerResponse): Promise<FanAction | undefined> {
    const posted = await readPostedJson(
      req,
      res,
      FANS_BODY_LIMIT,
      'a fan action ({"action":"add"|"approve"|"retire","id",…})',
    );
    if (posted === undefined) return undefined;
    const parsed = posted.json;
    const action = FanActionSchema.safeParse(parsed);
    if (!action.success) {
      const issue = action.error.issues[0];
      sendErrorCode(
        res,
        "FANWATCH_INPUT_INVALID",
        `not a fan action ({"action":"add"|"approve"|"retire","id",…}): ${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`,
      );
      return undefined;
    }
    return action.data;
  }
}

function listed({ mqttPasswordHash: _hash, ...fan }: FanRecord): ListedFan {
  return fan;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(body));
}
