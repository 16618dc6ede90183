import { createWriteStream } from "node:fs";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import { UsageError } from "../errors.js";
import { nextMessageBySubject } from "./jetstream.js";
import {
  BACKUP_FORMAT,
  MANIFEST_FILE,
  MESSAGES_FILE,
  STREAM_FILE,
  streamDir,
  type BackedUpStream,
  type Manifest,
  type MessageLine,
  type StreamFile,
} from "./backup-format.js";

export interface BackupProgress {
  /** Called now and then while a stream is read: its name, messages written, and how many there are. */
  reading(stream: string, written: number, total: number): void;
  /** Called once a stream is written whole. */
  done(stream: BackedUpStream): void;
}

export interface BackupOptions {
  /** Streams to back up; every stream of the server when empty. */
  streams: readonly string[];
  /** The nats-server's version, for the manifest. */
  server: string;
  progress: BackupProgress;
}

/**
 * Backs up streams into `dir` (backup-format.ts), one after the other, and writes the manifest
 * last. Each stream is a point in time: its last sequence is read first, and its messages up to
 * that one are read through an ordered consumer (one request per batch, flow controlled, so memory
 * stays bounded whatever the stream's size); what is published meanwhile is left out, and what
 * expires or is deleted meanwhile may be missing. Streams are not taken at the same instant: a
 * stream backed up later may hold what refers to messages published after an earlier one's point.
 */
export async function backupStreams(
  js: JetStreamClient,
  jsm: JetStreamManager,
  dir: string,
  options: BackupOptions,
): Promise<Manifest> {
  const started = new Date().toISOString();
  const all = await listStreams(jsm);
  const unknown = options.streams.filter((s) => !all.includes(s));
  if (unknown.length > 0)
    throw new UsageError(
      `no stream ${unknown.join(", ")} on this server; its streams are ${all.length === 0 ? "none" : all.join(", ")}`,
    );
  await mustBeEmpty(dir);
  const names = options.streams.length > 0 ? [...new Set(options.streams)] : all;
  const streams: BackedUpStream[] = [];
  for (const name of names) {
    const stream = await backupStream(js, jsm, dir, name, options.progress);
    options.progress.done(stream);
    streams.push(stream);
  }
  const manifest: Manifest = {
    format: BACKUP_FORMAT,
    started,
    finished: new Date().toISOString(),
    server: options.server,
    streams,
  };
  await writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

async function listStreams(jsm: JetStreamManager): Promise<string[]> {
  const names: string[] = [];
  for await (const name of jsm.streams.names()) names.push(name);
  return names.sort();
}

/** A backup never mixes with older files: the directory is made, or must be empty. */
async function mustBeEmpty(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const entries = await readdir(dir);
  if (entries.length > 0) throw new UsageError(`${dir} is not empty: back up into a new directory (or an empty one)`);
}

async function backupStream(
  js: JetStreamClient,
  jsm: JetStreamManager,
  dir: string,
  name: string,
  progress: BackupProgress,
): Promise<BackedUpStream> {
  const info = await jsm.streams.info(name);
  const { state } = info;
  const out = streamDir(dir, name);
  await mkdir(out);
  const file: StreamFile = {
    config: info.config,
    state: { messages: state.messages, first_seq: state.first_seq, last_seq: state.last_seq, bytes: state.bytes },
  };
  await writeFile(join(out, STREAM_FILE), `${JSON.stringify(file, null, 2)}\n`);
  const counted = { messages: 0, bytes: 0 };
  await pipeline(
    inChunks(messageLines(js, jsm, name, state, counted, (n) => progress.reading(name, n, state.messages))),
    createGzip(),
    createWriteStream(join(out, MESSAGES_FILE), { flags: "wx" }),
  );
  return { name, messages: counted.messages, bytes: counted.bytes, lastSeq: state.last_seq };
}

const PROGRESS_EVERY = 5_000;
const IDLE_CHECK_MS = 2_000;
/** Lines handed to gzip together: one write per message cost 4x the reading (bench:backup). */
const CHUNK_BYTES = 64 * 1024;

async function* inChunks(lines: AsyncIterable<string>): AsyncGenerator<string> {
  let chunk = "";
  for await (const line of lines) {
    chunk += line;
    if (chunk.length >= CHUNK_BYTES) {
      yield chunk;
      chunk = "";
    }
  }
  if (chunk !== "") yield chunk;
}

/**
 * The stream's messages up to `state.last_seq` as lines. The consumer is read one message at a
 * time, each line handed on before the next is taken: gzip's and the file's backpressure reach
 * the consumer, which asks for another batch only as its buffer empties.
 */
async function* messageLines(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  state: { messages: number; last_seq: number },
  counted: { messages: number; bytes: number },
  report: (written: number) => void,
): AsyncGenerator<string> {
  report(0);
  if (state.messages === 0) return;
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All });
  // By bytes, not count: a batch stays 4 MiB whatever the size of the messages (1 MiB each at most).
  const feed = await consumer.consume({ max_bytes: 4 * 1024 ** 2 });
  // Should what is left below the point expire or be deleted before it comes, nothing more would:
  // a quiet feed asks the stream whether anything is left up to the point.
  let lastSeen = 0;
  let heard = true;
  const watch = setInterval(() => {
    if (heard) return void (heard = false);
    void nextMessageBySubject(jsm, stream, lastSeen + 1, ">")
      .catch(() => undefined)
      .then((next) => {
        if (next === null || (next !== undefined && next.seq > state.last_seq)) void feed.close();
      });
  }, IDLE_CHECK_MS);
  try {
    for await (const msg of feed) {
      heard = true;
      lastSeen = msg.seq;
      if (msg.seq > state.last_seq) break;
      counted.messages++;
      counted.bytes += msg.data.length;
      yield `${JSON.stringify(toLine(msg))}\n`;
      if (counted.messages % PROGRESS_EVERY === 0) report(counted.messages);
      // Nothing after it (the rest expired or was deleted), or the point in time reached.
      if (msg.info.pending === 0 || msg.seq === state.last_seq) break;
    }
  } finally {
    clearInterval(watch);
    await feed.close();
  }
  report(counted.messages);
}

function toLine(msg: JsMsg): MessageLine {
  const headers: Array<[string, string]> = [];
  if (msg.headers !== undefined)
    for (const [key, values] of msg.headers) for (const value of values) headers.push([key, value]);
  return {
    seq: msg.seq,
    time: msg.timestamp,
    subject: msg.subject,
    ...(headers.length === 0 ? {} : { headers }),
    data: Buffer.from(msg.data).toString("base64"),
  };
}
