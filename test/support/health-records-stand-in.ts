import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { HealthRecord } from "../../lib/domain/health.js";

/** One entry of an episode's history, as the contract of `GET /function/health/history` has it. */
export type StandInTransition = { event: string; at: string } & Record<string, unknown>;

interface Episode {
  alarmId: string;
  opened: string;
  closed: string | null;
  transitions: StandInTransition[];
  findings: Array<Record<string, unknown>>;
  notifications: Array<{ target: string; event: string; transitionId: string; at: string; outcome: string }>;
}

const RESULTS = ["confirmed", "false-alarm", "not-checked"];

type Maintenance = { deviceIDs: string[]; from?: string; until: string; by?: string; note?: string };

/**
 * A STAND-IN for the health function, for the fan view's tests only: it keeps records and
 * episodes in memory and answers as the workbench's contracts say (brief of issue 22) —
 * `GET /function/health` (the records), `GET /function/health/history?deviceID=`, `GET
 * /function/score` (the model's threshold), and `POST /function/health` with acknowledge, shelve,
 * maintenance, comment, assign and finding, refusing an unknown fan or episode (404), a finding on
 * an open unacknowledged episode (409) and a result outside the three (400). It is not the health
 * function: the real one's rules and storage are tested in health-function.test.ts and history's tests.
 */
export class HealthRecordsStandIn {
  readonly #server: Server;
  readonly records = new Map<string, HealthRecord>();
  readonly #episodes = new Map<string, Episode[]>();
  /** What `GET /function/score` answers: the model's threshold and, when a test sets it, its id. */
  scoreAnswer: { threshold: number; id?: string } = { threshold: 0.5 };
  /** Each fan's transitions outside any episode (maintenance on a healthy fan), oldest first. */
  readonly #other = new Map<string, StandInTransition[]>();

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<HealthRecordsStandIn> {
    const server = createServer();
    const standIn = new HealthRecordsStandIn(server);
    server.on("request", (req, res) => void standIn.#handle(req, res));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return standIn;
  }

  /** `http://127.0.0.1:<port>/function/health` */
  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/function/health`;
  }

  /** A fan's record, and its episode with the transitions that opened it (when the record has an alarmId). */
  add(record: HealthRecord, opening: StandInTransition[] = [], notified = false): void {
    this.records.set(record.deviceID, record);
    if (record.alarmId === null) return;
    const episode: Episode = {
      alarmId: record.alarmId,
      opened: record.since,
      closed: null,
      transitions: opening,
      findings: [],
      notifications: notified
        ? [
            {
              target: "webhook",
              event: "alarm",
              transitionId: `${record.alarmId}-1`,
              at: record.since,
              outcome: "sent",
            },
          ]
        : [],
    };
    this.#episodes.set(record.deviceID, [episode, ...(this.#episodes.get(record.deviceID) ?? [])]);
  }

  /** Closed episodes of a fan, older than what it has: `count` of them, an hour apart, each with its alarm and clear. */
  addPast(deviceID: string, count: number): void {
    const known = this.#episodes.get(deviceID) ?? [];
    const oldest = Math.min(Date.now(), ...known.map((e) => Date.parse(e.opened)));
    const past = Array.from({ length: count }, (_, i): Episode => {
      const opened = new Date(oldest - (i + 1) * 3_600_000).toISOString();
      const closed = new Date(oldest - (i + 1) * 3_600_000 + 600_000).toISOString();
      const alarmId = `${deviceID}@${opened}`;
      return {
        alarmId,
        opened,
        closed,
        transitions: [
          { event: "alarm", at: opened, state: "alarm", cause: "vibration", probability: 0.9, alarmId },
          { event: "cleared", at: closed, state: "cleared", alarmId },
        ],
        findings: [],
        notifications: [],
      };
    });
    this.#episodes.set(deviceID, [...known, ...past]);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://stand-in");
    if (req.method === "GET" && url.pathname === "/function/score") return send(res, 200, this.scoreAnswer);
    if (req.method === "GET" && url.pathname === "/function/health")
      return send(res, 200, { fans: [...this.records.values()] });
    if (req.method === "GET" && url.pathname === "/function/health/history") {
      const deviceID = url.searchParams.get("deviceID") ?? "";
      if (!this.records.has(deviceID)) return refuse(res, 404, "FANWATCH_HEALTH_NOT_FOUND", `no fan ${deviceID}`);
      // Pages of `limit` episodes, newest first; the cursor (opaque to the page) is where the next one starts.
      const limit = Number(url.searchParams.get("limit") ?? 20);
      const start = Number(url.searchParams.get("cursor") ?? 0);
      const all = this.#episodes.get(deviceID) ?? [];
      const episodes = all.slice(start, start + limit).map((e) => ({
        ...this.#summary(deviceID, e),
        ...e,
        evidence: { readings: 0 },
      }));
      const next = start + limit < all.length ? String(start + limit) : null;
      const other = start === 0 ? (this.#other.get(deviceID) ?? []) : [];
      return send(res, 200, { deviceID, episodes, other, cursor: next, truncated: false });
    }
    if (req.method !== "POST" || url.pathname !== "/function/health")
      return refuse(res, 404, "FANWATCH_NOT_FOUND", `no route ${req.method} ${url.pathname}`);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, string>;
    if (body.action === "maintenance") return this.#maintenance(body as unknown as Maintenance, res);
    this.#act(body, res);
  }

  #summary(
    deviceID: string,
    episode: Episode,
  ): Pick<HealthRecord, "state" | "severity" | "cause"> & { model: string | null } {
    const record = this.records.get(deviceID);
    // As health sums it up: the model of the warning or alarm that opened it.
    const opening = episode.transitions.find((t) => t.event === "warning" || t.event === "alarm");
    const model = typeof opening?.model === "string" ? opening.model : null;
    return record?.alarmId === episode.alarmId
      ? { state: record.state, severity: record.severity, cause: record.cause, model }
      : { state: "cleared", severity: "none", cause: null, model };
  }

  /** Every fan named, whatever its state; refused whole when one is unknown. */
  #maintenance(body: Maintenance, res: ServerResponse): void {
    const unknown = body.deviceIDs.filter((id) => !this.records.has(id));
    if (unknown.length > 0)
      return refuse(res, 404, "FANWATCH_HEALTH_NOT_FOUND", `no record of fans ${unknown.join(", ")}`);
    const at = new Date().toISOString();
    const from = body.from ?? at;
    const records: HealthRecord[] = [];
    const transitions: StandInTransition[] = [];
    for (const deviceID of body.deviceIDs) {
      const record = this.records.get(deviceID) as HealthRecord;
      record.maintenance = { from, until: body.until, by: body.by ?? "", note: body.note ?? null };
      const transition = { event: "maintenance", at, by: body.by, note: body.note, from, until: body.until };
      const episode = (this.#episodes.get(deviceID) ?? []).find((e) => e.alarmId === record.alarmId);
      if (episode !== undefined) episode.transitions.push({ ...transition, deviceID, alarmId: record.alarmId });
      else
        this.#other.set(deviceID, [...(this.#other.get(deviceID) ?? []), { ...transition, deviceID, alarmId: null }]);
      records.push(record);
      transitions.push(transition);
    }
    send(res, 200, { records, transitions });
  }

  #act(body: Record<string, string>, res: ServerResponse): void {
    const deviceID = body.deviceID ?? "";
    const record = this.records.get(deviceID);
    if (record === undefined) return refuse(res, 404, "FANWATCH_HEALTH_NOT_FOUND", `no record of fan ${deviceID}`);
    const alarmId = body.alarmId ?? record.alarmId;
    const episode = (this.#episodes.get(deviceID) ?? []).find((e) => e.alarmId === alarmId);
    if (episode === undefined)
      return refuse(res, 404, "FANWATCH_HEALTH_NOT_FOUND", `fan ${deviceID} has no episode ${alarmId}`);
    const at = new Date().toISOString();
    const by = body.by ?? "";
    const note = body.note ?? undefined;
    let transition: StandInTransition;
    switch (body.action) {
      case "acknowledge":
        Object.assign(record, { acknowledged: true, acknowledgedBy: by, note: note ?? null });
        transition = { event: "acknowledged", at, by, note };
        break;
      case "shelve":
        Object.assign(record, { shelvedUntil: body.until, shelvedBy: by });
        transition = { event: "shelved", at, by, note, until: body.until };
        break;
      case "comment":
        transition = { event: "commented", at, by, note };
        break;
      case "assign":
        Object.assign(record, { assignedTo: body.to });
        transition = { event: "assigned", at, by, to: body.to };
        break;
      case "finding": {
        if (!RESULTS.includes(body.result ?? ""))
          return refuse(res, 400, "FANWATCH_INPUT_INVALID", `result must be one of ${RESULTS.join(", ")}`);
        if (episode.closed === null && !record.acknowledged && record.alarmId === alarmId)
          return refuse(
            res,
            409,
            "FANWATCH_HEALTH_CONFLICT",
            "acknowledge the episode before recording a finding on it",
          );
        const finding = { result: body.result, part: body.part, sensor: body.sensor, note, by, at };
        episode.findings.push(finding);
        Object.assign(record, { finding });
        transition = { event: "finding", ...finding };
        break;
      }
      default:
        return refuse(res, 400, "FANWATCH_INPUT_INVALID", `unknown action ${body.action}`);
    }
    episode.transitions.push({ ...transition, deviceID, alarmId });
    send(res, 200, { record, transition });
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

function refuse(res: ServerResponse, status: number, code: string, error: string): void {
  send(res, status, { error, code });
}
