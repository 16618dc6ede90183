import type { IncomingMessage, ServerResponse } from "node:http";
import { errorAnswer } from "../lib/errors.js";
import { sendErrorCode } from "../lib/infra/http/error-answer.js";
import type { Logger } from "../lib/infra/log.js";
import type { Access } from "./access/access.js";
import type { ModelsLink } from "./models-link.js";

/** What GET /ui/api/models answers without NATS_URL. */
export interface NoModelsRegistry {
  registry: "none";
  message: string;
}

/**
 * The Models panel's API (docs/page.md, "Models"): `GET /ui/api/models`, for every signed-in user,
 * viewers included, since it only reads. Without a model registry (no NATS_URL) it says score serves
 * MODEL_DIR; with one that cannot be read it answers 503 FANWATCH_REGISTRY_UNAVAILABLE, and the rest
 * of the page serves as ever.
 */
export class ModelsApi {
  constructor(
    private readonly access: Access,
    private readonly link: ModelsLink | undefined,
    private readonly log: Logger,
  ) {}

  /** Serves /ui/api/models; false for any other path. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (new URL(req.url ?? "/", "http://page").pathname !== "/ui/api/models") return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendErrorCode(res, "FANWATCH_METHOD_NOT_ALLOWED", `${req.method} is not served here; use GET`, { allow: "GET" });
      req.resume();
      return true;
    }
    if (this.access.visitor(req) === undefined) {
      sendErrorCode(res, "FANWATCH_UNAUTHENTICATED", "sign in first: /ui/signin", { "cache-control": "no-store" });
      return true;
    }
    if (this.link === undefined) {
      const none: NoModelsRegistry = {
        registry: "none",
        message: "no model registry (NATS_URL unset): score serves the model in its MODEL_DIR",
      };
      send(res, 200, none);
      return true;
    }
    this.link.panel().then(
      (panel) => send(res, 200, panel),
      (error: unknown) => {
        const answer = errorAnswer(error);
        if (answer !== undefined) return send(res, answer.status, answer.body);
        this.log.error({ event: "models_api_error", err: String(error) }, "models API failed unexpectedly");
        sendErrorCode(res, "FANWATCH_INTERNAL", "the model registry answered unexpectedly");
      },
    );
    return true;
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(body));
}
