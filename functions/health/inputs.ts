import { createHash } from "node:crypto";
import { z } from "zod";
import { FEATURES } from "../../lib/domain/features.js";
import { FINDING_RESULTS } from "../../lib/domain/health.js";
import { PredictionSchema, type Prediction } from "../../lib/domain/prediction.js";
import { parseTimestamp } from "../../lib/domain/telemetry.js";
import { fieldPath } from "../../lib/infra/validation.js";
import type { HealthInput, NoticeInput } from "./evaluator.js";
import { isSensorNotice, SensorNoticeSchema, type SensorNotice } from "../../lib/domain/sensor-notice.js";

const DeviceIdSchema = z.union([z.string(), z.number().transform(String)]).pipe(z.string().min(1).max(128));
const BySchema = z.string().trim().min(1).max(128);
const NoteSchema = z.string().max(1024).optional();

/**
 * A moment as ISO 8601 with its zone (`2026-11-27T18:00:00Z`, `…+01:00`), to epoch ms: a time
 * without a zone would mean whichever zone health runs in. A day the month does not have (Feb 30)
 * is refused rather than rolled over into the next month.
 */
const InstantSchema = z.iso
  .datetime({ offset: true, error: "an ISO 8601 time with seconds and a zone, e.g. 2026-11-27T18:00:00Z" })
  .refine((text) => {
    const [year, month, day] = text.slice(0, 10).split("-").map(Number) as [number, number, number];
    return day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
  }, "no such day")
  .transform((text) => Date.parse(text));

/** `{"deviceID":"3","action":"acknowledge","by":"name","note":"…"}`: someone has seen the alarm. */
export const AcknowledgeSchema = z.object({
  deviceID: DeviceIdSchema,
  action: z.literal("acknowledge"),
  by: BySchema,
  note: NoteSchema,
});
export type Acknowledge = z.infer<typeof AcknowledgeSchema>;

/** `{"deviceID","action":"shelve","until":"<ISO>","by","note"}`: no notifications about the open episode until then. */
export const ShelveSchema = z.object({
  deviceID: DeviceIdSchema,
  action: z.literal("shelve"),
  until: InstantSchema,
  by: BySchema,
  note: NoteSchema,
});
export type Shelve = z.infer<typeof ShelveSchema>;

/** Fans one maintenance request may name (413 beyond): a hall's worth, well within a budget's writes. */
export const MAX_MAINTENANCE_FANS = 1_000;

/**
 * `{"deviceIDs":[…],"action":"maintenance","from":"<ISO>","until":"<ISO>","by","note"}`: planned
 * work, whose alarms are recorded but not notified. Without `from` the window starts now.
 */
export const MaintenanceSchema = z.object({
  deviceIDs: z.array(DeviceIdSchema).min(1, "name at least one fan").max(MAX_MAINTENANCE_FANS),
  action: z.literal("maintenance"),
  from: InstantSchema.optional(),
  until: InstantSchema,
  by: BySchema,
  note: NoteSchema,
});
export type Maintenance = z.infer<typeof MaintenanceSchema>;

/** An episode's id, as records and transitions carry it (`<deviceID>@<ISO time>`). */
const AlarmIdSchema = z.string().min(1).max(256);

/** `{"deviceID","alarmId","action":"comment","note","by"}`: a remark on an episode. */
export const CommentActionSchema = z.object({
  deviceID: DeviceIdSchema,
  alarmId: AlarmIdSchema,
  action: z.literal("comment"),
  note: z.string().trim().min(1, "say something").max(1024),
  by: BySchema,
});

/** `{"deviceID","alarmId","action":"assign","to","by"}`: who is on the episode. */
export const AssignActionSchema = z.object({
  deviceID: DeviceIdSchema,
  alarmId: AlarmIdSchema,
  action: z.literal("assign"),
  to: z.string().trim().min(1).max(128),
  by: BySchema,
});

/** `{"deviceID","alarmId","action":"finding","result","part","sensor","note","by"}`: what was found. */
export const FindingActionSchema = z.object({
  deviceID: DeviceIdSchema,
  alarmId: AlarmIdSchema,
  action: z.literal("finding"),
  result: z.enum(FINDING_RESULTS, { error: `one of ${FINDING_RESULTS.join(", ")}` }),
  part: z.string().trim().min(1).max(128).optional(),
  sensor: z.enum(FEATURES, { error: `one of ${FEATURES.join(", ")}, or left out` }).optional(),
  note: NoteSchema,
  by: BySchema,
});

/** The actions POST /function/health takes besides predictions, and the shape each one has (for the errors). */
export const ACTIONS = {
  acknowledge: '{"deviceID","action":"acknowledge","by","note"}',
  shelve: '{"deviceID","action":"shelve","until":"<ISO time>","by","note"}',
  maintenance: '{"deviceIDs":[…],"action":"maintenance","from":"<ISO time>","until":"<ISO time>","by","note"}',
  comment: '{"deviceID","alarmId","action":"comment","note","by"}',
  assign: '{"deviceID","alarmId","action":"assign","to","by"}',
  finding:
    '{"deviceID","alarmId","action":"finding","result":"confirmed"|"false-alarm"|"not-checked","part","sensor","note","by"}',
} as const;
export type Action = keyof typeof ACTIONS;

/**
 * A body is a command when it is one object with an `action`; otherwise it is one prediction or
 * an array of them (what our connector sends from the anomaly topic).
 */
export function isCommand(body: unknown): boolean {
  return body !== null && typeof body === "object" && !Array.isArray(body) && "action" in body;
}

/**
 * One fan's predictions of an invocation, in arrival order, and the notices of its readings that
 * could not be scored (SensorNotices, from the same anomaly topic), with a digest that names the
 * batch when it needs one.
 */
export interface FanBatch {
  deviceID: string;
  inputs: HealthInput[];
  notices: NoticeInput[];
  digest: string | undefined;
}

export interface Rejection {
  index: number;
  item: unknown;
  error: string;
  field: string;
}

/** Valid predictions and sensor notices grouped by fan, and the rejected ones, each named by its index and field. */
export function groupByFan(
  items: readonly unknown[],
  arrival: number,
): { fans: FanBatch[]; rejections: Rejection[]; valid: number } {
  const groups = new Map<
    string,
    { predictions: Array<Prediction | SensorNotice>; inputs: HealthInput[]; notices: NoticeInput[]; untimed: boolean }
  >();
  const rejections: Rejection[] = [];
  let valid = 0;
  for (const [index, item] of items.entries()) {
    const notice = isSensorNotice(item);
    const parsed = notice ? SensorNoticeSchema.safeParse(item) : PredictionSchema.safeParse(item);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = fieldPath("", issue?.path ?? []) || (notice ? "notice" : "prediction");
      rejections.push({ index, item, error: `${field}: ${issue?.message ?? "invalid"}`, field });
      continue;
    }
    const message = parsed.data;
    let group = groups.get(message.deviceID);
    if (group === undefined)
      groups.set(message.deviceID, (group = { predictions: [], inputs: [], notices: [], untimed: false }));
    group.predictions.push(message);
    // Trends are judged on reading time; a prediction without a usable one counts at arrival.
    const at = message.timeStamp === undefined ? undefined : parseTimestamp(message.timeStamp);
    if (at === undefined) group.untimed = true;
    if ("implausible" in message) group.notices.push({ notice: message, at: at ?? arrival });
    else group.inputs.push({ prediction: message, at: at ?? arrival });
    valid++;
  }
  const fans = [...groups].map(([deviceID, g]) => ({
    deviceID,
    inputs: g.inputs,
    notices: g.notices,
    digest: g.untimed ? digest(g.predictions) : undefined,
  }));
  return { fans, rejections, valid };
}

/**
 * Names a fan's share of a batch: the connector sends the same batch again after a 503 or a
 * timeout, and its predictions must not be counted twice. With reading times the evaluator
 * recognises them itself (it moves forwards in reading time only); a prediction without one is
 * placed at its arrival, which differs on the second delivery, so such a share is named by its
 * content: 96 bits of SHA-256 over the predictions as validated (a collision between two batches
 * of one fan is not a practical concern). Only then: hashing every fan's share cost 2-3% of
 * health's CPU.
 */
function digest(predictions: ReadonlyArray<Prediction | SensorNotice>): string {
  return createHash("sha256").update(JSON.stringify(predictions)).digest("base64url").slice(0, 16);
}
