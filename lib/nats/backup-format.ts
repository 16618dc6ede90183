import { join } from "node:path";
import { z } from "zod";

/**
 * The files of a NATS backup (`fanwatch nats backup`, docs/backup.md), one directory:
 *
 *     backup.json                    the manifest, written last: its presence marks a finished backup
 *     <STREAM>/stream.json           the stream's configuration and its state when it was read
 *     <STREAM>/messages.jsonl.gz     its messages, oldest first, one JSON object a line, gzipped
 *
 * Plain JSON and gzip so that a backup can be read, checked and filtered with zcat and jq, and
 * restored into any nats-server version that takes the configuration (2.9 and 2.10 here), unlike
 * JetStream's own snapshot format, which is the server's store files.
 */
export const BACKUP_FORMAT = "fanwatch-nats-backup/1";
export const MANIFEST_FILE = "backup.json";
export const STREAM_FILE = "stream.json";
export const MESSAGES_FILE = "messages.jsonl.gz";

export function streamDir(dir: string, stream: string): string {
  return join(dir, stream);
}

/** One stream in the manifest: how many messages its file holds and up to which sequence. */
export const BackedUpStream = z.object({
  name: z.string(),
  messages: z.number().int().min(0),
  bytes: z.number().int().min(0),
  /** The last sequence of the stream when its reading began: nothing after it is in the backup. */
  lastSeq: z.number().int().min(0),
});
export type BackedUpStream = z.infer<typeof BackedUpStream>;

export const Manifest = z.object({
  format: z.literal(BACKUP_FORMAT),
  /** When the backup began and ended (ISO). */
  started: z.string(),
  finished: z.string(),
  /** The nats-server it came from, e.g. 2.10.22. */
  server: z.string(),
  streams: z.array(BackedUpStream),
});
export type Manifest = z.infer<typeof Manifest>;

/**
 * stream.json: the configuration as the server reported it (passed back to it on restore, so kept
 * whole: fields a later server adds survive) and the state it had when the backup read it.
 */
export const StreamFile = z.object({
  config: z.looseObject({ name: z.string(), subjects: z.array(z.string()).optional() }),
  state: z.looseObject({ messages: z.number(), first_seq: z.number(), last_seq: z.number() }),
});
export type StreamFile = z.infer<typeof StreamFile>;

/**
 * One line of messages.jsonl.gz. `seq` and `time` are the original sequence and storage time,
 * kept for reading and checking: a restore cannot give them back (JetStream numbers and stamps
 * what it stores). Headers keep their order and repeats; data is base64.
 */
export const MessageLine = z.object({
  seq: z.number().int().min(1),
  time: z.string(),
  subject: z.string().min(1),
  headers: z.array(z.tuple([z.string(), z.string()])).optional(),
  data: z.string(),
});
export type MessageLine = z.infer<typeof MessageLine>;
