import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { FEATURE_BOUNDS, FEATURES, type FeatureName } from "../lib/domain/features.js";
import { HEALTHY_RANGES } from "../lib/domain/fan-ranges.js";
import type { HealthRecord } from "../lib/domain/health.js";
import { sendErrorCode } from "../lib/infra/http/error-answer.js";
import type { FanSeries, FanState, FanView, FleetView, LastTransition } from "./fleet-view.js";

const PATH = /^\/ui\/api\/fans\/([^/]+)$/;
/** As the telemetry's deviceID. */
const MAX_ID = 128;
/**
 * A model's threshold read from score is kept until the fan's predictions name another model (a
 * promotion or a rollback: the new model has its own threshold), which is read at once; a failed
 * read, or one that found score still on another model, is tried again after this long.
 */
const THRESHOLD_RETRY_MS = 30_000;
const ModelSchema = z.object({ threshold: z.number().gt(0).lt(1), id: z.string().max(128).optional() });

/** What `GET /ui/api/fans/<deviceID>` answers: everything the fan view draws. */
export interface FanDetailAnswer {
  deviceID: string;
  state: FanState;
  /** The health function's record of the fan (contributions, eta, acknowledgement…), null until it has one. */
  record: HealthRecord | null;
  /** The fan's state in the registry, null without one; its open sensor issue, null when none. */
  registration: FanView["registration"];
  sensor: FanView["sensor"];
  /**
   * The latest prediction's probability (one reading) and the model that scored it (null: none
   * named), and how many of the last predictions said fault.
   */
  latest: { probability: number | null; model: string | null; recent: { faulty: number; scored: number } };
  readings: FanSeries["readings"];
  predictions: FanSeries["predictions"];
  /** Each sensor's healthy range (where the fans' healthy readings lie) and unit: the band the charts draw. */
  healthy: Record<FeatureName, { min: number; max: number; unit: string }>;
  /** The model's threshold: a reading whose probability reaches it is scored faulty; null if score could not be asked. */
  threshold: number | null;
  /**
   * The newest health transition about the fan the page received (on the alarm topic), null when
   * none since it started: the fan view reads the fan's history again when this changes, rather
   * than asking health for it every few seconds.
   */
  lastTransition: LastTransition | null;
}

const HEALTHY = Object.fromEntries(
  FEATURES.map((f) => [f, { ...HEALTHY_RANGES[f], unit: FEATURE_BOUNDS[f].unit }]),
) as FanDetailAnswer["healthy"];

/**
 * The fan view's data, `GET /ui/api/fans/<deviceID>`: the fleet view's longer series of the fan
 * (10 minutes of readings and predictions), its health record, the healthy bands and the model's
 * threshold. An unknown fan is a 404 that says so. The threshold is read once from score, beside
 * the health function the fleet view reads (`/function/score` next to `/function/health`).
 */
export class FanDetail {
  #threshold: number | null = null;
  /** The model score said it served when the threshold was read (undefined: score named none). */
  #thresholdOf: string | undefined;
  /** The model the predictions named at the last read, and when the next read for it may be. */
  #triedFor: string | null | undefined;
  #nextTry = 0;

  constructor(
    private readonly fleet: FleetView,
    /** False when sign-in is on and the request has no session: the detail is then refused with 401. */
    private readonly signedIn: (req: IncomingMessage) => boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** Serves `/ui/api/fans/<deviceID>`; false for any other path. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    const match = PATH.exec(new URL(req.url ?? "/", "http://page").pathname);
    if (match === null) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendErrorCode(res, "FANWATCH_METHOD_NOT_ALLOWED", `${req.method} is not allowed here; GET the fan's detail`, {
        allow: "GET",
      });
      return true;
    }
    if (!this.signedIn(req)) {
      sendErrorCode(res, "FANWATCH_UNAUTHENTICATED", "sign in first: /ui/signin");
      return true;
    }
    let deviceID: string;
    try {
      deviceID = decodeURIComponent(match[1] ?? "");
    } catch {
      sendErrorCode(res, "FANWATCH_INPUT_INVALID", "the fan's id in the path is not valid percent-encoding");
      return true;
    }
    if (deviceID.length > MAX_ID)
      sendErrorCode(res, "FANWATCH_INPUT_INVALID", `a fan's id has at most ${MAX_ID} characters`);
    else void this.#answer(deviceID, res);
    return true;
  };

  async #answer(deviceID: string, res: ServerResponse): Promise<void> {
    const fan = this.fleet.series(deviceID);
    if (fan === undefined) {
      sendErrorCode(
        res,
        "FANWATCH_HEALTH_NOT_FOUND",
        `no fan ${JSON.stringify(deviceID)} here: it sent no readings in the last 10 minutes and health has no record of it`,
      );
      return;
    }
    const answer: FanDetailAnswer = {
      deviceID,
      state: fan.view.state,
      record: fan.record,
      registration: fan.view.registration,
      sensor: fan.view.sensor,
      latest: { probability: fan.view.probability, model: fan.view.model, recent: fan.view.recent },
      readings: fan.readings,
      predictions: fan.predictions,
      healthy: HEALTHY,
      threshold: await this.#modelThreshold(fan.view.model),
      lastTransition: fan.lastTransition,
    };
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(answer));
  }

  /** The threshold of the model that scores now: read again once the fan's predictions name a model it was not read for. */
  async #modelThreshold(scoredBy: string | null): Promise<number | null> {
    const healthUrl = this.fleet.healthUrl;
    const current = this.#threshold !== null && (scoredBy === null || scoredBy === this.#thresholdOf);
    if (current || healthUrl === undefined || (scoredBy === this.#triedFor && this.now() < this.#nextTry))
      return this.#threshold;
    this.#triedFor = scoredBy;
    this.#nextTry = this.now() + THRESHOLD_RETRY_MS;
    try {
      const res = await fetch(new URL("score", healthUrl), { signal: AbortSignal.timeout(2_000) });
      const model = ModelSchema.safeParse(res.ok ? await res.json() : undefined);
      if (model.success) [this.#threshold, this.#thresholdOf] = [model.data.threshold, model.data.id];
    } catch {
      // Shown as no threshold line; asked again after THRESHOLD_RETRY_MS.
    }
    return this.#threshold;
  }
}
