import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createGunzip } from "node:zlib";
import {
  JetStreamApiCodes,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
  type StreamConfig,
} from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import type { z } from "zod";
import { UsageError } from "../errors.js";
import {
  Manifest,
  MANIFEST_FILE,
  MessageLine,
  MESSAGES_FILE,
  STREAM_FILE,
  StreamFile,
  streamDir,
  type BackedUpStream,
} from "./backup-format.js";
import { isApiError } from "./jetstream.js";

export interface RestoreProgress {
  publishing(stream: string, published: number, total: number): void;
  done(result: RestoredStream): void;
}

export interface RestoreOptions {
  /** Streams to restore; every stream of the backup when empty. */
  streams: readonly string[];
  /** Delete a stream that holds messages and restore over it; without it such a stream is refused. */
  replace: boolean;
  progress: RestoreProgress;
}

export interface RestoredStream {
  name: string;
  /** Messages published. */
  published: number;
  /** Those the stream dropped as duplicates of an earlier message id within its duplicate window. */
  duplicates: number;
  /** Messages in the stream once restored. */
  stored: number;
}

/** How many publishes wait for their acknowledgement at once: order is kept (one connection), the round trips overlap. */
const IN_FLIGHT = 256;
const PROGRESS_EVERY = 5_000;

/**
 * Publish headers that are orders to the server, not part of a message: stored with it, they
 * would be checked again on restore (a KV update's expected subject sequence) and fail.
 */
const DROPPED_HEADER = /^Nats-Expected-/i;

/** The manifest and stream files of a finished backup, checked before anything is changed. */
export async function readBackup(dir: string): Promise<{ manifest: Manifest; streams: Map<string, StreamFile> }> {
  const manifestPath = join(dir, MANIFEST_FILE);
  const text = await readFile(manifestPath, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT")
      throw new UsageError(
        `${dir} is not a finished NATS backup: it has no ${MANIFEST_FILE} (written last by fanwatch nats backup)`,
      );
    throw new UsageError(`cannot read ${manifestPath}: ${error.message}`, { cause: error });
  });
  const manifest = parseJson(Manifest, text, manifestPath);
  const streams = new Map<string, StreamFile>();
  for (const { name } of manifest.streams) {
    const path = join(streamDir(dir, name), STREAM_FILE);
    const file = parseJson(
      StreamFile,
      await readFile(path, "utf8").catch((error: Error) => {
        throw new UsageError(`cannot read ${path}: ${error.message}`, { cause: error });
      }),
      path,
    );
    if (file.config.name !== name) throw new UsageError(`${path} is the stream ${file.config.name}, not ${name}`);
    await stat(join(streamDir(dir, name), MESSAGES_FILE)).catch((error: Error) => {
      throw new UsageError(`${name}'s messages are missing: ${error.message}`, { cause: error });
    });
    streams.set(name, file);
  }
  return { manifest, streams };
}

/**
 * Restores a backup's streams: each is created with its configuration, then its messages are
 * published in their order, headers and data as they were (a KV bucket's stream thus gives its
 * keys their values back). A stream that exists and holds messages is refused unless `replace`
 * (checked for every stream before any is touched); an empty one is made again. The messages get
 * new sequence numbers and storage times: JetStream assigns both.
 */
export async function restoreStreams(
  js: JetStreamClient,
  jsm: JetStreamManager,
  dir: string,
  options: RestoreOptions,
): Promise<RestoredStream[]> {
  const backup = await readBackup(dir);
  const inBackup = backup.manifest.streams.map((s) => s.name);
  const unknown = options.streams.filter((s) => !inBackup.includes(s));
  if (unknown.length > 0)
    throw new UsageError(`the backup in ${dir} has no stream ${unknown.join(", ")}; it has ${inBackup.join(", ")}`);
  const chosen = backup.manifest.streams.filter(
    (s) => options.streams.length === 0 || options.streams.includes(s.name),
  );
  for (const { name } of chosen) {
    const config = backup.streams.get(name)?.config;
    if (config?.mirror !== undefined || config?.sources !== undefined)
      throw new UsageError(`${name} takes its messages from other streams (mirror or sources): restore those instead`);
  }
  const occupied = [];
  for (const { name } of chosen) {
    const messages = await storedMessages(jsm, name);
    if (messages !== undefined && messages > 0) occupied.push(`${name} (${messages} messages)`);
  }
  if (occupied.length > 0 && !options.replace)
    throw new UsageError(
      `refusing to restore over streams that hold messages: ${occupied.join(", ")}; --replace deletes them first`,
    );
  const results: RestoredStream[] = [];
  for (const stream of chosen) {
    const file = backup.streams.get(stream.name) as StreamFile;
    const result = await restoreStream(js, jsm, dir, stream, file, options.progress);
    options.progress.done(result);
    results.push(result);
  }
  return results;
}

async function storedMessages(jsm: JetStreamManager, name: string): Promise<number | undefined> {
  try {
    return (await jsm.streams.info(name)).state.messages;
  } catch (error) {
    if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return undefined;
    throw error;
  }
}

async function restoreStream(
  js: JetStreamClient,
  jsm: JetStreamManager,
  dir: string,
  stream: BackedUpStream,
  file: StreamFile,
  progress: RestoreProgress,
): Promise<RestoredStream> {
  const { name } = stream;
  if ((await storedMessages(jsm, name)) !== undefined) await jsm.streams.delete(name);
  // A sealed stream takes no messages: sealed once they are in.
  const config = { ...file.config, sealed: false } as unknown as StreamConfig;
  await jsm.streams.add(config);
  const path = join(streamDir(dir, name), MESSAGES_FILE);
  let published = 0;
  let duplicates = 0;
  const pending: Array<Promise<PubAck>> = [];
  const settle = async (acks: Array<Promise<PubAck>>) => {
    for (const ack of await Promise.all(acks)) if (ack.duplicate) duplicates++;
  };
  progress.publishing(name, 0, stream.messages);
  let lineNo = 0;
  try {
    for await (const text of createInterface({
      input: createReadStream(path).pipe(createGunzip()),
      crlfDelay: Infinity,
    })) {
      lineNo++;
      if (text === "") continue;
      const line = parseJson(MessageLine, text, `${path} line ${lineNo}`);
      const ack = publish(js, line);
      // Seen by settle() later; until then a failure must not be an unhandled rejection (which
      // would end the process with a stack trace instead of the error below).
      ack.catch(() => undefined);
      pending.push(ack);
      if (pending.length >= IN_FLIGHT) await settle(pending.splice(0));
      published++;
      if (published % PROGRESS_EVERY === 0) progress.publishing(name, published, stream.messages);
    }
    await settle(pending.splice(0));
  } catch (error) {
    await Promise.allSettled(pending);
    if (error instanceof UsageError) throw error;
    throw new UsageError(
      `${name}: restored ${published} of ${stream.messages} messages, then: ${(error as Error).message}`,
      { cause: error },
    );
  }
  progress.publishing(name, published, stream.messages);
  if (published !== stream.messages)
    throw new UsageError(
      `${path} holds ${published} messages, the manifest says ${stream.messages}: the backup is damaged`,
    );
  if (file.config.sealed === true)
    await jsm.streams.update(name, { ...config, sealed: true } as unknown as Partial<StreamConfig>);
  return { name, published, duplicates, stored: (await jsm.streams.info(name)).state.messages };
}

function publish(js: JetStreamClient, line: MessageLine): Promise<PubAck> {
  const data = Buffer.from(line.data, "base64");
  const kept = (line.headers ?? []).filter(([key]) => !DROPPED_HEADER.test(key));
  if (kept.length === 0) return js.publish(line.subject, data);
  const h = natsHeaders();
  for (const [key, value] of kept) h.append(key, value);
  return js.publish(line.subject, data, { headers: h });
}

function parseJson<T extends z.ZodType>(schema: T, text: string, where: string): z.output<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${where} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `${where} is not what fanwatch nats backup writes: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}`.trim(),
    );
  }
  return parsed.data;
}
