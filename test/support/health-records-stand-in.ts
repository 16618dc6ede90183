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

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://stand-in");
    if (req.method === "GET" && url.pathname === "/function/score") return send(res, 200, { threshold: 0.5 });
    if (req.method === "GET" && url.pathname === "/function/health")
      return send(res, 200, { fans: [...this.records.values()] });
    if (req.method === "GET" && url.pathname === "/function/health/history") {
      const deviceID = url.searchParams.get("deviceID") ?? "";
      if (!this.records.has(deviceID)) return refuse(res, 404, "FANWATCH_HEALTH_NOT_FOUND", `no fan ${deviceID}`);
      const episodes = (this.#episodes.get(deviceID) ?? []).map((e) => ({
        ...this.#summary(deviceID, e),
        ...e,
        evidence: { readings: 0 },
      }));
      return send(res, 200, { deviceID, episodes, cursor: null });
    }
    if (req.method !== "POST" || url.pathname !== "/function/health")
      return refuse(res, 404, "FANWATCH_NOT_FOUND", `no route ${req.method} ${url.pathname}`);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, string>;
    this.#act(body, res);
  }

  #summary(deviceID: string, episode: Episode): Pick<HealthRecord, "state" | "severity" | "cause"> {
    const record = this.records.get(deviceID);
    return record?.alarmId === episode.alarmId
      ? { state: record.state, severity: record.severity, cause: record.cause }
      : { state: "cleared", severity: "none", cause: null };
  }

  #act(body: Record<string, string>, res: ServerResponse): void {
    const deviceID = body.action === "maintenance" ? (body.deviceIDs?.[0] ?? "") : (body.deviceID ?? "");
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
      case "maintenance":
        record.maintenance = { from: body.from ?? at, until: body.until ?? at, by, note: note ?? null };
        transition = { event: "maintenance", at, by, note, from: body.from ?? at, until: body.until };
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
