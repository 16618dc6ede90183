import { createHash } from "node:crypto";
import { encodeKey } from "../../lib/nats/keys.js";
import type { Matcher, SilenceKind, WantedSilence } from "./model.js";

/**
 * fanwatch's silences: "someone is on it" in Alertmanager's own terms. Each carries, at the end of
 * its comment, a key `[fanwatch/<site>/<fan>/<kind>[/<episode>]]` by which the reconcile finds it
 * again at every Alertmanager (their ids differ from one Alertmanager to the next), creates it where
 * it is missing and expires it where it is no longer wanted. Only silences created by "fanwatch"
 * with a key of this site are ever touched: people's own silences are left alone.
 */

export const CREATED_BY = "fanwatch";

/** What Alertmanager's GET /api/v2/silences says of one silence (the fields used). */
export interface ExistingSilence {
  id: string;
  state: "active" | "pending" | "expired";
  comment: string;
  createdBy: string;
  startsAt: string;
  endsAt: string;
  matchers: Array<{ name: string; value: string; isRegex: boolean; isEqual?: boolean | undefined }>;
}

/** What POST /api/v2/silences takes: with `id`, an update of that silence (or its replacement). */
export interface PostableSilence {
  id?: string;
  matchers: Array<{ name: string; value: string; isRegex: false; isEqual: true }>;
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
}

export type SilenceOp =
  | { op: "create"; key: string; silence: PostableSilence }
  | { op: "update"; key: string; silence: PostableSilence & { id: string } }
  | { op: "expire"; key: string; id: string };

/** Every silence key of a site starts with this. */
export function siteKeyPrefix(site: string): string {
  return `fanwatch/${site}/`;
}

/** Every silence key of one fan starts with this (the ID encoded as a NATS key: no `/`, `]` or space). */
export function fanKeyPrefix(site: string, deviceID: string): string {
  return `${siteKeyPrefix(site)}${encodeKey(deviceID)}/`;
}

/** Short and stable: an episode id is the fan and a time, too long to read twice in a comment. */
function episodeHash(alarmId: string): string {
  return createHash("sha256").update(alarmId).digest("hex").slice(0, 12);
}

export function silenceKey(site: string, deviceID: string, kind: SilenceKind, alarmId?: string | null): string {
  const base = `${fanKeyPrefix(site, deviceID)}${kind}`;
  return alarmId === undefined || alarmId === null ? base : `${base}/${episodeHash(alarmId)}`;
}

const KEY_AT_END = /\[(fanwatch\/[^\]\s]+)\]\s*$/;

/** The comment people read in Alertmanager's UI, with the key at its end. */
export function commentWithKey(text: string, key: string): string {
  return `${text} [${key}]`;
}

/** The key of one of fanwatch's silences; undefined for anyone else's. */
export function keyOf(silence: Pick<ExistingSilence, "comment" | "createdBy">): string | undefined {
  if (silence.createdBy !== CREATED_BY) return undefined;
  return KEY_AT_END.exec(silence.comment)?.[1];
}

export function fanMatchers(deviceID: string, site: string): Matcher[] {
  return [
    { name: "deviceID", value: deviceID },
    { name: "site", value: site },
  ];
}

function postable(matchers: Matcher[]): PostableSilence["matchers"] {
  return matchers.map((m) => ({ name: m.name, value: m.value, isRegex: false, isEqual: true }));
}

function sameMatchers(wanted: Matcher[], existing: ExistingSilence["matchers"]): boolean {
  if (wanted.length !== existing.length) return false;
  const plain = new Set(existing.filter((m) => !m.isRegex && m.isEqual !== false).map((m) => `${m.name}\0${m.value}`));
  return wanted.every((m) => plain.has(`${m.name}\0${m.value}`));
}

export interface PlanOptions {
  now: number;
  /** How far ahead an open-ended silence (an acknowledgement) reaches; renewed once less than half is left. */
  openEndedMs: number;
}

/** Two times within a second are the same: Alertmanager compares silences' starts in whole seconds. */
const SLACK_MS = 1_000;

/**
 * What to do at one Alertmanager so that it holds exactly the wanted silences: `existing` are the
 * silences of fanwatch there that are not expired, for the fans being reconciled (by key prefix),
 * `wanted` what those fans want. A wanted silence whose end has passed is not wanted any more (it
 * expired by itself). Of two silences with one key (each of a clustered pair created one, or an
 * answer was lost and the create retried), the one with the smaller id stays, on every replica alike.
 */
export function planSilences(wanted: WantedSilence[], existing: ExistingSilence[], options: PlanOptions): SilenceOp[] {
  const { now, openEndedMs } = options;
  const byKey = new Map<string, ExistingSilence[]>();
  for (const silence of existing) {
    const key = keyOf(silence);
    if (key === undefined || silence.state === "expired") continue;
    byKey.set(key, [...(byKey.get(key) ?? []), silence]);
  }
  const ops: SilenceOp[] = [];
  const seen = new Set<string>();
  for (const w of wanted) {
    const endsAt = w.endsAt === null ? now + openEndedMs : Date.parse(w.endsAt);
    if (endsAt <= now || seen.has(w.key)) continue;
    seen.add(w.key);
    const [keeper, ...extra] = (byKey.get(w.key) ?? []).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const e of extra) ops.push({ op: "expire", key: w.key, id: e.id });
    const startsAt = Date.parse(w.startsAt);
    const body: PostableSilence = {
      matchers: postable(w.matchers),
      startsAt: w.startsAt,
      endsAt: new Date(endsAt).toISOString(),
      createdBy: CREATED_BY,
      comment: w.comment,
    };
    if (keeper === undefined) {
      ops.push({ op: "create", key: w.key, silence: body });
      continue;
    }
    const keeperStarts = Date.parse(keeper.startsAt);
    const keeperEnds = Date.parse(keeper.endsAt);
    const future = startsAt > now + SLACK_MS;
    const startsOk = future ? Math.abs(keeperStarts - startsAt) < SLACK_MS : keeperStarts <= now + SLACK_MS;
    const endsOk = w.endsAt === null ? keeperEnds - now > openEndedMs / 2 : Math.abs(keeperEnds - endsAt) < SLACK_MS;
    if (startsOk && endsOk && sameMatchers(w.matchers, keeper.matchers) && keeper.comment === w.comment) continue;
    // Alertmanager changes an active silence in place only when its start stays: keep the start it has.
    const start = !future && keeper.state === "active" ? keeper.startsAt : w.startsAt;
    ops.push({ op: "update", key: w.key, silence: { ...body, startsAt: start, id: keeper.id } });
  }
  for (const [key, silences] of byKey)
    if (!seen.has(key)) for (const s of silences) ops.push({ op: "expire", key, id: s.id });
  return ops;
}
