import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { jetstream, jetstreamManager, type JetStreamManager, type PubAck } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { ensureEvidenceStream } from "../../lib/nats/evidence.js";
import { ensureHealthEventsStream } from "../../lib/nats/health-events.js";
import { startNats } from "../../test/support/nats.js";
import { CLI } from "../../test/support/paths.js";
import type { Plan } from "./floor.js";
import { measure, median, ratio, type Measured } from "./measure.js";
import { benchMessages, KV_BUCKET } from "./messages.js";

const FLOOR = fileURLToPath(new URL("./floor.js", import.meta.url));

export interface NatsSettings {
  /** Messages of FAN_HEALTH_EVENTS and FAN_EVIDENCE together (4:1). */
  events: number;
  /** Keys of the KV bucket fan_health. */
  keys: number;
  rounds: number;
}

/** One timed run: how much it moved, how fast, how big the process got. */
export interface Run {
  seconds: number;
  messagesPerSecond: number;
  mbPerSecond: number;
  peakRssMb: number;
  /** The seconds the process itself reports for its work (connection included, Node's start not): the CLI's "in N.N s", the floor's own clock. */
  workSeconds: number;
}

export interface Compared {
  fanwatch: Run;
  floor: Run;
  timeRatioToFloor: number | null;
  /** The same ratio on the work the processes report, Node's start left out. */
  workRatioToFloor: number | null;
}

export interface NatsResult {
  kind: "nats";
  messages: number;
  dataMb: number;
  backupMb: number;
  /** Medians over the rounds, and fanwatch's time as a multiple of its floor's (1 = as fast as the floor). */
  backup: Compared;
  restore: Compared;
}

/**
 * `fanwatch nats backup` of a server holding health's events, evidence and a KV bucket, and
 * `fanwatch nats restore` of it into an empty server, each round against its floor (floor.ts):
 * the backup against reading the same streams and doing nothing, the restore against publishing
 * the same messages. Every run is a process of its own, timed from spawn to exit.
 */
export async function runNats(
  settings: NatsSettings,
  work: string,
  progress: (line: string) => void,
): Promise<NatsResult> {
  const [source, target] = await Promise.all([startNats(), startNats()]);
  try {
    const plan = await fill(source.url, settings, progress);
    const planPath = join(work, "plan.json");
    await writeFile(planPath, JSON.stringify(plan));
    const messages = settings.events + settings.keys;
    const runs = { backup: [] as Array<[Run, Run]>, restore: [] as Array<[Run, Run]> };
    let dataBytes = 0;
    let backupBytes = 0;
    for (let round = 1; round <= settings.rounds; round++) {
      const dir = await mkdtemp(join(work, "nats-")); // empty: the backup takes an empty directory
      // Alternate which goes first, so that neither always runs on a warmer cache.
      const floorFirst = round % 2 === 1;
      const backup = await pair(
        floorFirst,
        () => measure(process.execPath, [FLOOR, "read", source.url]),
        () => measure(process.execPath, [CLI, "nats", "backup", "--out", dir, "--nats", source.url]),
      );
      const floorRead = JSON.parse(backup.floor.stdout) as { messages: number; bytes: number };
      if (floorRead.messages !== messages)
        throw new Error(`the floor read ${floorRead.messages} of ${messages} messages`);
      dataBytes = floorRead.bytes;
      backupBytes = await sizeOf(dir);
      const restore = await pair(
        floorFirst,
        async () => {
          await clear(target.url);
          return measure(process.execPath, [FLOOR, "publish", target.url, planPath]);
        },
        async () => {
          await clear(target.url);
          return measure(process.execPath, [CLI, "nats", "restore", dir, "--nats", target.url]);
        },
      );
      const stored = await storedMessages(target.url);
      if (stored !== messages) throw new Error(`the restore left ${stored} of ${messages} messages`);
      await rm(dir, { recursive: true, force: true });
      const rates = (m: Measured): Run => ({
        seconds: round3(m.seconds),
        messagesPerSecond: Math.round(messages / m.seconds),
        mbPerSecond: Math.round((dataBytes / 1e6 / m.seconds) * 10) / 10,
        peakRssMb: m.peakRssMb,
        workSeconds: workSeconds(m.stdout),
      });
      const b: [Run, Run] = [rates(backup.ours), rates(backup.floor)];
      const r: [Run, Run] = [rates(restore.ours), rates(restore.floor)];
      runs.backup.push(b);
      runs.restore.push(r);
      console.log(JSON.stringify({ kind: "nats-round", round, messages, backup: b, restore: r }));
      progress(
        `nats round ${round}: backup ${b[0].seconds} s, work ${b[0].workSeconds} s (${b[0].messagesPerSecond}/s, ${b[0].peakRssMb} MB RSS) against the read floor ${b[1].seconds} s, work ${b[1].workSeconds} s (${b[1].peakRssMb} MB); restore ${r[0].seconds} s, work ${r[0].workSeconds} s (${r[0].messagesPerSecond}/s, ${r[0].peakRssMb} MB) against the publish floor ${r[1].seconds} s, work ${r[1].workSeconds} s (${r[1].peakRssMb} MB)`,
      );
    }
    const medians = (pairs: Array<[Run, Run]>) => {
      const fanwatch = medianRun(pairs.map((p) => p[0]));
      const floor = medianRun(pairs.map((p) => p[1]));
      return {
        fanwatch,
        floor,
        timeRatioToFloor: ratio(fanwatch.seconds, floor.seconds),
        workRatioToFloor: ratio(fanwatch.workSeconds, floor.workSeconds),
      };
    };
    return {
      kind: "nats",
      messages,
      dataMb: Math.round(dataBytes / 1e5) / 10,
      backupMb: Math.round(backupBytes / 1e5) / 10,
      backup: medians(runs.backup),
      restore: medians(runs.restore),
    };
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}

async function pair(
  floorFirst: boolean,
  floor: () => Promise<Measured>,
  ours: () => Promise<Measured>,
): Promise<{ floor: Measured; ours: Measured }> {
  if (floorFirst) {
    const f = await floor();
    return { floor: f, ours: await ours() };
  }
  const o = await ours();
  return { floor: await floor(), ours: o };
}

/** The source: health's two streams as health creates them, the KV bucket, and the messages. */
async function fill(url: string, settings: NatsSettings, progress: (line: string) => void): Promise<Plan> {
  const started = performance.now();
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const options = { maxAgeMs: 400 * 86_400_000, replicas: 1 };
    const streams = [
      await ensureHealthEventsStream(jsm, options),
      await ensureEvidenceStream(jsm, options),
      await new Kvm(js).create(KV_BUCKET, { history: 1 }).then(() => jsm.streams.info(`KV_${KV_BUCKET}`)),
    ];
    let pending: Array<Promise<PubAck>> = [];
    for (const m of benchMessages(settings.events, settings.keys)) {
      pending.push(js.publish(m.subject, m.data, m.msgID === undefined ? undefined : { msgID: m.msgID }));
      if (pending.length >= 1_000) {
        await Promise.all(pending);
        pending = [];
      }
    }
    await Promise.all(pending);
    progress(
      `nats: source filled with ${settings.events} events and evidence and ${settings.keys} keys in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    return { events: settings.events, keys: settings.keys, configs: streams.map((s) => s.config) };
  } finally {
    await nc.close();
  }
}

async function withJsm<T>(url: string, work: (jsm: JetStreamManager) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: url });
  try {
    return await work(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

/** Deletes every stream (before a restore, untimed). */
function clear(url: string): Promise<void> {
  return withJsm(url, async (jsm) => {
    const names: string[] = [];
    for await (const name of jsm.streams.names()) names.push(name);
    for (const name of names) await jsm.streams.delete(name);
  });
}

function storedMessages(url: string): Promise<number> {
  return withJsm(url, async (jsm) => {
    let sum = 0;
    for await (const info of jsm.streams.list()) sum += info.state.messages;
    return sum;
  });
}

async function sizeOf(dir: string): Promise<number> {
  let sum = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true }))
    if (entry.isFile()) sum += (await stat(join(entry.parentPath, entry.name))).size;
  return sum;
}

/** The floor prints {"seconds": …}; the CLI ends with "… in 1.2 s". */
function workSeconds(stdout: string): number {
  const cli = / in (\d+(?:\.\d+)?) s/.exec(stdout)?.[1];
  if (cli !== undefined) return Number(cli);
  return round3((JSON.parse(stdout) as { seconds: number }).seconds);
}

function medianRun(runs: Run[]): Run {
  return {
    seconds: median(runs.map((r) => r.seconds)),
    messagesPerSecond: median(runs.map((r) => r.messagesPerSecond)),
    mbPerSecond: median(runs.map((r) => r.mbPerSecond)),
    peakRssMb: median(runs.map((r) => r.peakRssMb)),
    workSeconds: median(runs.map((r) => r.workSeconds)),
  };
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;
