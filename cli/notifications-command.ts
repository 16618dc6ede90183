import type { Command } from "commander";
import { UsageError } from "../lib/errors.js";
import { readSite, SITE_SETTINGS } from "../lib/infra/config.js";
import { formatDuration } from "../lib/infra/duration.js";
import { NotifyUnavailableError } from "../notifier/errors.js";
import type { QueueStatus, StoredDeadLetter } from "../notifier/dead-letters.js";
import { NATS_URL_SETTINGS, natsAddress, withNats, type CommandConnection } from "./nats-connection.js";
import { addSettingFlags, addSettingsHelp, type Io } from "./parse.js";

const WHY = "the notifier's queues and dead letters are in NATS";
const CONNECTION: CommandConnection = {
  name: "fanwatch-notifications",
  timeoutMs: 5_000,
  unavailable: (message, cause) => new NotifyUnavailableError(message, { cause }),
};

interface ListOptions {
  json?: boolean;
  target?: string;
}

interface RedriveOptions {
  json?: boolean;
  target?: string;
  id?: string;
  all?: boolean;
}

/** `fanwatch notifications list|redrive`: the notifier's queues and dead letters (docs/notifier.md). */
export function addNotificationsCommand(program: Command, io: Io): void {
  const notifications = program
    .command("notifications")
    .description("list and redrive the notifier's dead letters, and show what waits in each target's queue");

  const list = notifications
    .command("list")
    .description(
      "the dead letters (time, target, fan, event, transition id, attempts, last error) and, per target, how many transitions wait and the age of the oldest",
    )
    .option("--json", "one JSON document: {site, queues: [...], deadLetters: [...]}")
    .option("--target <id>", "only this target (webhook-1a2b3c4d, alertmanager)");
  const listGiven = addSettingFlags(list, NATS_URL_SETTINGS);
  addSettingsHelp(list, [
    { title: "Where the notifier keeps its queues (a flag beats its variable)", settings: NATS_URL_SETTINGS },
    { title: "Whose", settings: SITE_SETTINGS },
  ]);
  list.exitOverride();
  list.action(async (opts: ListOptions & Record<string, unknown>) => {
    const where = natsAddress(listGiven(opts), WHY);
    const site = readSite();
    await withNats(where, CONNECTION, async ({ jsm }) => {
      const { readDeadLetters, readQueues, orphanRemovalCommand } = await import("../notifier/dead-letters.js");
      const queues = await readQueues(jsm, site);
      const letters = await readDeadLetters(jsm, site);
      checkTarget(opts.target, queues, letters, site);
      const shownQueues = queues.filter((q) => opts.target === undefined || q.target === opts.target);
      const shownLetters = letters.filter((l) => opts.target === undefined || l.letter.target === opts.target);
      if (opts.json === true) {
        io.out(
          JSON.stringify({
            site,
            queues: shownQueues,
            deadLetters: shownLetters.map(({ seq, letter }) => ({ seq, ...letter })),
          }),
        );
        return;
      }
      if (queues.length === 0 && letters.length === 0) {
        io.err(`no notifier has run for site ${site} on NATS at ${where.shown}: no queues, no dead letters`);
        return;
      }
      io.out(`queues (site ${site}):`);
      for (const q of shownQueues) io.out(`  ${q.target.padEnd(widest(shownQueues))}  ${queueLine(q)}`);
      if (shownQueues.length === 0) io.out("  (none)");
      const orphans = shownQueues.filter((q) => q.orphan);
      if (orphans.length > 0)
        io.err(
          "an orphaned queue stays where it stopped: configured again, it sends what came since, " +
            "what is older than NOTIFY_MAX_AGE as dead letters; to drop one: " +
            orphans.map((q) => orphanRemovalCommand(site, q.target)).join("; "),
        );
      io.out(shownLetters.length === 0 ? "no dead letters" : `dead letters (${shownLetters.length}, oldest first):`);
      for (const stored of shownLetters) io.out(letterLine(stored));
      if (shownLetters.length > 0)
        io.err(
          `send them again with: fanwatch notifications redrive ${opts.target === undefined ? "--all" : `--target ${opts.target}`} (or --id <transition id>)`,
        );
    });
  });

  const redrive = notifications
    .command("redrive")
    .description(
      "put dead letters back in their targets' queues: the running notifier delivers them again (each with its transition id, so receivers still drop repeats)",
    )
    .option("--target <id>", "the dead letters of this target")
    .option("--id <transition id>", "the dead letters of this transition")
    .option("--all", "every dead letter (of --target, when given)")
    .option("--json", "the counts as JSON: {redriven, byTarget, skipped}");
  const redriveGiven = addSettingFlags(redrive, NATS_URL_SETTINGS);
  addSettingsHelp(redrive, [
    { title: "Where the notifier keeps its queues (a flag beats its variable)", settings: NATS_URL_SETTINGS },
    { title: "Whose", settings: SITE_SETTINGS },
  ]);
  redrive.exitOverride();
  redrive.action(async (opts: RedriveOptions & Record<string, unknown>) => {
    if (opts.all !== true && opts.target === undefined && opts.id === undefined)
      throw new UsageError("say which dead letters to redrive: --id <transition id>, --target <id>, or --all");
    const where = natsAddress(redriveGiven(opts), WHY);
    const site = readSite();
    await withNats(where, CONNECTION, async ({ js, jsm }) => {
      const { readDeadLetters, readQueues, redriveDeadLetters } = await import("../notifier/dead-letters.js");
      const { NoDeadLetterMatchError } = await import("../notifier/errors.js");
      const queues = await readQueues(jsm, site);
      const letters = await readDeadLetters(jsm, site);
      checkTarget(opts.target, queues, letters, site);
      const matching = letters.filter(
        ({ letter }) =>
          (opts.target === undefined || letter.target === opts.target) &&
          (opts.id === undefined || letter.transition?.id === opts.id),
      );
      // A message that was not a transition cannot be sent; it stays for someone to read.
      const chosen = matching.filter(({ letter }) => letter.transition !== null);
      const skipped = matching.length - chosen.length;
      if (chosen.length === 0)
        throw new NoDeadLetterMatchError(
          `no dead letter to redrive${describeSelection(opts)} at site ${site}` +
            (letters.length === 0
              ? ": there are none"
              : `: there are ${letters.length} (fanwatch notifications list)${skipped > 0 ? `; ${skipped} matching ones are not transitions and cannot be sent` : ""}`),
        );
      for (const target of new Set(chosen.map((c) => c.letter.target))) {
        const queue = queues.find((q) => q.target === target);
        if (queue === undefined || queue.orphan)
          io.err(
            `${target} ${queue === undefined ? "has no queue" : "is not configured in the last notifier started"} at site ${site}: its notifications wait until a notifier sending to it runs`,
          );
      }
      const done = await redriveDeadLetters(js, jsm, site, chosen, (n) =>
        io.progress(`redriven ${n} of ${chosen.length}`),
      );
      io.progressDone();
      const byTarget: Record<string, number> = {};
      for (const { letter } of chosen) byTarget[letter.target] = (byTarget[letter.target] ?? 0) + 1;
      if (opts.json === true) io.out(JSON.stringify({ redriven: done, byTarget, skipped }));
      else
        io.out(
          `redriven ${done} dead letter${done === 1 ? "" : "s"} (${Object.entries(byTarget)
            .map(([t, n]) => `${t}: ${n}`)
            .join(", ")}): the notifier delivers them again` +
            (skipped > 0 ? `; left ${skipped} that are not transitions` : ""),
        );
    });
  });
}

/** A --target that names no queue and no dead letter is a typo: say which there are. */
function checkTarget(
  target: string | undefined,
  queues: readonly QueueStatus[],
  letters: readonly StoredDeadLetter[],
  site: string,
): void {
  if (target === undefined) return;
  const known = new Set([...queues.map((q) => q.target), ...letters.map((l) => l.letter.target)]);
  if (known.has(target)) return;
  throw new UsageError(
    `--target ${target}: site ${site} has no such target; ${known.size === 0 ? "there are none" : `the targets are ${[...known].sort().join(", ")}`}`,
  );
}

function describeSelection(opts: RedriveOptions): string {
  const parts = [
    ...(opts.id === undefined ? [] : [`--id ${opts.id}`]),
    ...(opts.target === undefined ? [] : [`--target ${opts.target}`]),
  ];
  return parts.length === 0 ? "" : ` matching ${parts.join(" ")}`;
}

function widest(queues: readonly QueueStatus[]): number {
  return Math.max(0, ...queues.map((q) => q.target.length));
}

function queueLine(q: QueueStatus): string {
  const waiting =
    q.pending === 0
      ? "nothing pending"
      : `${q.pending} pending, the oldest ${formatDuration(q.oldestPendingSeconds * 1000)} old`;
  return q.orphan ? `${waiting}  (orphan: the last notifier started does not send to it)` : waiting;
}

/** One line a dead letter: when, target, fan, event, transition id, attempts, the last error (control characters escaped). */
function letterLine({ letter }: StoredDeadLetter): string {
  const t = letter.transition;
  const what =
    t === null
      ? `(not a transition: ${visible(letter.payload ?? "")})`
      : `fan ${visible(t.deviceID)}  ${t.event}  ${visible(t.id)}`;
  const attempts = `${letter.attempts} attempt${letter.attempts === 1 ? "" : "s"}`;
  return `  ${letter.deadAt}  ${letter.target}  ${what}  ${attempts}  ${visible(letter.lastError)}`;
}

const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** Device ids and receivers' answers come from elsewhere: escape what a terminal would interpret. */
function visible(text: string): string {
  return text.replace(
    // eslint-disable-next-line no-control-regex -- the control characters are what it escapes
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
