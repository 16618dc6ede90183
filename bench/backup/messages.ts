import { EVIDENCE_STREAM, episodeEvidenceSubject, healthyEvidenceSubject } from "../../lib/nats/evidence.js";
import { HEALTH_EVENTS_STREAM, healthEventSubject } from "../../lib/nats/health-events.js";
import { makeTransition } from "../../test/support/notifier-events.js";

/**
 * The messages the NATS part backs up, the same every time they are made: health's transitions
 * (FAN_HEALTH_EVENTS, with their id as the message id, as health publishes them), evidence
 * batches of 8 readings (FAN_EVIDENCE) and the fans' records in the KV bucket fan_health. The
 * source is filled with them, and the restore's floor publishes them again.
 */
export const KV_BUCKET = "fan_health";
export const KV_STREAM = `KV_${KV_BUCKET}`;
const SITE = "plant-a";
const FANS = 500;
const T0 = Date.UTC(2026, 10, 1);

export interface BenchMessage {
  stream: string;
  subject: string;
  data: Uint8Array;
  msgID?: string;
}

/** `events` messages split 4:1 between health events and evidence, then `keys` KV records. */
export function* benchMessages(events: number, keys: number): Generator<BenchMessage> {
  const evidence = Math.floor(events / 5);
  for (let i = 0; i < events - evidence; i++) yield transition(i);
  for (let i = 0; i < evidence; i++) yield evidenceBatch(i);
  for (let i = 0; i < keys; i++) yield record(i);
}

const encode = (value: unknown) => Buffer.from(JSON.stringify(value));

function transition(i: number): BenchMessage {
  const deviceID = `fan-${i % FANS}`;
  const at = new Date(T0 + i * 1_000).toISOString();
  const id = `${deviceID}:${T0 + i * 1_000}:${i}`;
  const event = (["warning", "alarm", "cleared"] as const)[i % 3];
  // Health's transition shape (test/support), its time and id fixed so every run backs up the same.
  const fields = { id, at, since: at, alarmId: `${deviceID}@${at}`, site: SITE };
  return {
    stream: HEALTH_EVENTS_STREAM,
    subject: healthEventSubject(SITE, deviceID),
    msgID: id,
    data: encode(makeTransition(deviceID, event, fields)),
  };
}

function evidenceBatch(i: number): BenchMessage {
  const deviceID = `fan-${i % FANS}`;
  const healthy = i % 4 !== 0;
  const alarmId = healthy ? null : `${deviceID}@${new Date(T0 + i * 1_000).toISOString()}`;
  const readings = Array.from({ length: 8 }, (_, r) => ({
    at: new Date(T0 + i * 1_000 + r * 100).toISOString(),
    rotation: 1500 + ((i + r) % 50),
    temperature: 40 + (r % 5) / 10,
    vibration: 0.5 + (i % 7) / 100,
    sound: 61,
    probability: healthy ? 0.02 : 0.91,
    fault: healthy ? 0 : 1,
  }));
  return {
    stream: EVIDENCE_STREAM,
    subject: healthy ? healthyEvidenceSubject(SITE, deviceID) : episodeEvidenceSubject(SITE, deviceID, alarmId ?? ""),
    msgID: `${SITE}:${deviceID}:${i}`,
    data: encode({ deviceID, alarmId, part: healthy ? "healthy" : "during", readings, total: 8 }),
  };
}

function record(i: number): BenchMessage {
  const deviceID = `fan-${i}`;
  const at = new Date(T0 + i * 1_000).toISOString();
  return {
    stream: KV_STREAM,
    subject: `$KV.${KV_BUCKET}.${deviceID}`,
    data: encode({
      deviceID,
      site: SITE,
      state: "ok",
      severity: "none",
      since: at,
      updatedAt: at,
      probability: 0.03,
      episode: null,
      outbox: [],
    }),
  };
}
