import { InvalidArgumentError, type Command } from "commander";
import type { MqttClient } from "mqtt";
import { readWriterConfig, WRITER_SETTINGS } from "../connectors/influxdb/config.js";
import { cannotReplay, DURATION, readDeadLetters, type StoredDeadLetter } from "../connectors/influxdb/dead-letters.js";
import { BrokerUnavailableError, InfluxQueryError, InfluxUnavailableError, PublishFailedError } from "../lib/errors.js";
import { readTopics, TOPIC_SETTINGS } from "../lib/infra/config.js";
import { readSettings } from "../lib/infra/settings.js";
import {
  brokerAddress,
  DEFAULT_MQTT_URL,
  MQTT_SETTINGS,
  mqttSettingsFromEnv,
  redactUrl,
} from "../lib/mqtt/settings.js";
import { addSettingFlags, addSettingsHelp, integer, settingParser, type Io } from "./parse.js";

/** The InfluxDB flags of `influx-writer`; 2.x is read through its InfluxQL /query API. */
const INFLUX_SETTINGS = {
  INFLUX_URL: WRITER_SETTINGS.INFLUX_URL,
  INFLUX_API: { ...WRITER_SETTINGS.INFLUX_API, help: "1.x or 2.x, 2.x read through its InfluxQL /query API" },
  INFLUX_DB: WRITER_SETTINGS.INFLUX_DB,
  INFLUX_ORG: WRITER_SETTINGS.INFLUX_ORG,
};

/** What it reads of the writer's settings: where InfluxDB is and how to log in. */
const INFLUX_READ_SETTINGS = {
  ...INFLUX_SETTINGS,
  INFLUX_BUCKET: WRITER_SETTINGS.INFLUX_BUCKET,
  INFLUX_TOKEN: WRITER_SETTINGS.INFLUX_TOKEN,
  INFLUX_USERNAME: WRITER_SETTINGS.INFLUX_USERNAME,
  INFLUX_PASSWORD: WRITER_SETTINGS.INFLUX_PASSWORD,
  SECRET_MOUNT_PATH: WRITER_SETTINGS.SECRET_MOUNT_PATH,
};

interface Options {
  since: string;
  limit: number;
  json?: boolean;
  replay?: boolean;
  broker?: string;
}

export function addDeadLettersCommand(program: Command, io: Io): void {
  const command = program
    .command("deadletters")
    .description(
      "list the dead letters stored in InfluxDB (time, source topic, reason, payload) and, with --replay, publish their payloads again",
    )
    .option("--since <duration>", "how far back, e.g. 30m, 1h, 7d", duration, "1h")
    .option("--limit <n>", "at most this many, the newest", atLeastOne, 50)
    .option(
      "--json",
      "one JSON object per dead letter ({time, topic, code when given, error, payload}), or the replay's counts",
    )
    .option(
      "--replay",
      "publish each listed payload again to its topic in full (a per-fan one too) at QoS 1 (skipping truncated ones and those from the dead-letter topic)",
    )
    .option(
      "--broker <url>",
      `with --replay: MQTT broker URL or host name (default $MQTT_URL or ${DEFAULT_MQTT_URL}; MQTT_USERNAME/MQTT_PASSWORD, MQTT_CA_FILE)`,
      settingParser(brokerAddress),
    );
  const given = addSettingFlags(command, INFLUX_SETTINGS);
  addSettingsHelp(command, [
    { title: "InfluxDB (the writer's variables; a flag beats its variable)", settings: INFLUX_READ_SETTINGS },
    { title: "With --replay, the broker, unless --broker names it", settings: MQTT_SETTINGS },
    { title: "Topics (letters from DEADLETTER_TOPIC are not replayed)", settings: TOPIC_SETTINGS },
  ]);
  command.action(async (opts: Options & Record<string, unknown>) => {
    if (opts.broker !== undefined && opts.replay !== true)
      command.error("error: --broker is for --replay", { exitCode: 2 });
    const influxFlags = given(opts);
    if (
      influxFlags.INFLUX_URL === undefined &&
      readSettings({ INFLUX_URL: WRITER_SETTINGS.INFLUX_URL }).INFLUX_URL === undefined
    )
      command.error("error: --influx-url (or INFLUX_URL) is required", { exitCode: 2 });
    const target = readWriterConfig(undefined, influxFlags).influx;
    const { letters, total } = await readDeadLetters(target, { since: opts.since, limit: opts.limit }).catch(
      (error: unknown) => {
        // InfluxDB unreachable, refusing the credentials, or without the database: say which InfluxDB.
        const where = (e: Error) => `${e.message} (reading dead letters from ${target.url})`;
        if (error instanceof InfluxUnavailableError) throw new InfluxUnavailableError(where(error), { cause: error });
        if (error instanceof InfluxQueryError) throw new InfluxQueryError(where(error), { cause: error });
        throw error;
      },
    );
    const window = `in the last ${opts.since}`;
    const shown = letters.length < total ? ` (the newest ${letters.length} of ${total}; --limit to see more)` : "";
    if (opts.replay === true) {
      io.err(`${total} dead letters ${window}${shown}`);
      return replay(letters, readTopics().deadletter, opts, io);
    }
    for (const letter of letters) io.out(opts.json === true ? JSON.stringify(letter) : format(letter));
    io.err(total === 0 ? `no dead letters ${window}` : `${total} dead letters ${window}${shown}`);
  });
}

function duration(value: string): string {
  if (!DURATION.test(value))
    throw new InvalidArgumentError(`--since takes a duration such as 30m, 1h or 7d, not "${value}".`);
  return value;
}

function atLeastOne(value: string): number {
  const n = integer("--limit")(value);
  if (n < 1) throw new InvalidArgumentError("--limit must be at least 1.");
  return n;
}

/** Two lines a letter: time, topic, reason and its code, then the payload, indented; control characters escaped. */
function format(letter: StoredDeadLetter): string {
  const code = letter.code === undefined ? "" : ` [${visible(letter.code)}]`;
  return `${shortTime(letter.time)}  ${visible(letter.topic ?? "(no topic)")}  ${visible(letter.error)}${code}\n    ${visible(letter.payload)}`;
}

function shortTime(time: string): string {
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? time : new Date(ms).toISOString();
}

const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** Payloads come from anyone who can publish: escape the control characters a terminal would interpret. */
function visible(text: string): string {
  return text.replace(
    // eslint-disable-next-line no-control-regex -- the control characters are what it escapes
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

async function replay(letters: StoredDeadLetter[], deadLetterTopic: string, opts: Options, io: Io): Promise<void> {
  const plan = letters.map((letter) => ({ letter, skip: cannotReplay(letter, deadLetterTopic) }));
  for (const { letter, skip } of plan)
    if (skip !== undefined)
      io.err(`skipping ${shortTime(letter.time)} ${visible(letter.topic ?? "(no topic)")}: ${skip}`);
  const todo = plan.flatMap(({ letter, skip }) =>
    skip === undefined && letter.topic !== undefined ? [{ topic: letter.topic, payload: letter.payload }] : [],
  );
  const replayed = todo.length === 0 ? 0 : await publishAll(todo, opts, io);
  const skipped = plan.length - todo.length;
  if (opts.json === true) io.out(JSON.stringify({ replayed, skipped }));
  else io.out(`replayed ${replayed} dead letters to their topics at QoS 1; skipped ${skipped}`);
}

/** Publishes each message to its topic at QoS 1, in order, with progress; stops at the first refusal. */
async function publishAll(messages: Array<{ topic: string; payload: string }>, opts: Options, io: Io): Promise<number> {
  const { connectMqtt } = await import("../lib/mqtt/client.js");
  const settings = mqttSettingsFromEnv(undefined, { url: opts.broker, from: "--broker" });
  let lastError = "";
  const client = connectMqtt(settings, {
    clientId: `fanwatch-replay-${process.pid}`,
    onError: (e) => (lastError = e.message),
  });
  let replayed = 0;
  try {
    await connected(
      client,
      () =>
        `cannot reach the MQTT broker at ${redactUrl(settings.url)}${lastError === "" ? "" : `: ${lastError}`} (check --broker, MQTT_USERNAME and MQTT_PASSWORD)`,
    );
    let shownAt = 0;
    for (const { topic, payload } of messages) {
      await client.publishAsync(topic, payload, { qos: 1 }).catch((error: unknown) => {
        throw new PublishFailedError(
          `replayed ${replayed} of ${messages.length}, then the broker refused a publish to ${topic}: ${(error as Error).message}`,
          { cause: error },
        );
      });
      replayed++;
      if (Date.now() - shownAt > 500) {
        io.progress(`replayed ${replayed} of ${messages.length}`);
        shownAt = Date.now();
      }
    }
    io.progressDone();
  } finally {
    await client.endAsync();
  }
  return replayed;
}

const CONNECT_TIMEOUT_MS = 10_000;

function connected(client: MqttClient, why: () => string): Promise<void> {
  if (client.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new BrokerUnavailableError(why())), CONNECT_TIMEOUT_MS);
    client.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
