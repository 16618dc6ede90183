import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { z } from "zod";
import { webhookTargetId } from "../../notifier/webhook.js";
import { eventually, eventuallyValue } from "../support/eventually.js";
import { startNats, type TestNats } from "../support/nats.js";
import { HealthEventsPublisher, makeTransition } from "../support/notifier-events.js";
import { freePort, runCli, spawnCli, waitForOutput } from "../support/process.js";
import { validSignature, WebhookReceiver } from "../support/webhook-receiver.js";

const SECRET = "the-webhook-secret-from-a-file";

const ListSchema = z.object({
  site: z.string(),
  queues: z.array(
    z.object({ target: z.string(), pending: z.number(), oldestPendingSeconds: z.number(), orphan: z.boolean() }),
  ),
  deadLetters: z.array(
    z.object({
      seq: z.number(),
      target: z.string(),
      attempts: z.number(),
      lastError: z.string(),
      deadAt: z.string(),
      transition: z.object({ id: z.string(), deviceID: z.string(), event: z.string() }).nullable(),
    }),
  ),
});

describe("fanwatch notifier and fanwatch notifications, as processes", { timeout: 180_000 }, () => {
  let dir: string;
  let secretFile: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "fanwatch-notifier-cli-"));
    secretFile = join(dir, "webhook-secret");
    await writeFile(secretFile, `${SECRET}\n`);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe("refuses a bad configuration with exit code 2 and says what to fix", () => {
    const base = () => ({ SECRET_MOUNT_PATH: dir, NATS_URL: "nats://127.0.0.1:4222" });

    it("a webhook without a signing key", async () => {
      const run = await runCli(["notifier"], { ...base(), NOTIFY_WEBHOOK_URL: "http://127.0.0.1:9/hook" });
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /NOTIFY_WEBHOOK_SECRET_FILE/);
      assert.match(run.stderr, /\[FANWATCH_CONFIG_INVALID\]/);
    });

    it("a webhook URL that is not http(s), in the variable or the flag, named without its secrets", async () => {
      const env = { ...base(), NOTIFY_WEBHOOK_SECRET_FILE: secretFile };
      const variable = await runCli(["notifier"], { ...env, NOTIFY_WEBHOOK_URL: "ftp://us3r:pa55@example.com/tok3n" });
      assert.equal(variable.code, 2, variable.stderr);
      assert.match(variable.stderr, /NOTIFY_WEBHOOK_URL: entry 1 \(ftp:\/\/example.com\) is not an http\(s\) URL/);
      const flag = await runCli(["notifier", "--webhook", "https://ok.example/hook,not a url with s3cret"], env);
      assert.equal(flag.code, 2, flag.stderr);
      assert.match(flag.stderr, /--webhook.*entry 2 of 2 is not a URL/);
      for (const secret of ["us3r", "pa55", "tok3n", "s3cret"])
        assert.ok(!variable.stderr.includes(secret) && !flag.stderr.includes(secret), secret);
    });

    it("a signing key that is too short, or no NATS", async () => {
      const short = await runCli(["notifier"], {
        ...base(),
        NOTIFY_WEBHOOK_URL: "http://127.0.0.1:9/hook",
        NOTIFY_WEBHOOK_SECRET: "short",
      });
      assert.equal(short.code, 2, short.stderr);
      assert.match(short.stderr, /NOTIFY_WEBHOOK_SECRET: at least 16 characters/);
      const noNats = await runCli(["notifier"], { SECRET_MOUNT_PATH: dir, NATS_URL: "" });
      assert.equal(noNats.code, 2, noNats.stderr);
      assert.match(noNats.stderr, /NATS_URL is not set/);
    });

    it("a redrive that does not say which dead letters", async () => {
      const run = await runCli(["notifications", "redrive"], base());
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /--id <transition id>, --target <id>, or --all/);
    });

    it("fails with its code (exit 1) when NATS cannot be reached", async () => {
      const port = await freePort();
      const run = await runCli(["notifications", "list"], { NATS_URL: `nats://127.0.0.1:${port}` });
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        /cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+.*\(NATS_URL\).*\[FANWATCH_NOTIFY_UNAVAILABLE\]/,
      );
    });
  });

  describe("with NATS and a receiver", () => {
    let nats: TestNats;
    let publisher: HealthEventsPublisher;
    let hook: WebhookReceiver;
    const children: ChildProcessWithoutNullStreams[] = [];

    beforeEach(async () => {
      nats = await startNats();
      publisher = await HealthEventsPublisher.connect(nats.url);
      hook = await WebhookReceiver.start();
    });

    afterEach(async () => {
      for (const child of children.splice(0))
        if (child.exitCode === null && child.signalCode === null) {
          const exit = once(child, "exit");
          child.kill("SIGKILL");
          await exit;
        }
      await hook.stop();
      await publisher.close();
      await nats.stop();
    });

    const env = (extra: Record<string, string> = {}) => ({
      NATS_URL: nats.url,
      NOTIFY_WEBHOOK_URL: hook.url,
      NOTIFY_WEBHOOK_SECRET_FILE: secretFile,
      SECRET_MOUNT_PATH: dir,
      HEALTH_HOST: "127.0.0.1",
      ...extra,
    });

    /** `fanwatch notifier` as a process, ready: its queues' consumers made (what it sends starts there). */
    async function startNotifier(
      extra: Record<string, string> = {},
    ): Promise<{ child: ChildProcessWithoutNullStreams; port: number; output: () => string }> {
      const port = await freePort();
      const child = spawnCli(["notifier"], env({ NOTIFIER_PORT: String(port), ...extra }));
      children.push(child);
      let output = "";
      child.stdout.on("data", (d: Buffer) => (output += d.toString()));
      child.stderr.on("data", (d: Buffer) => (output += d.toString()));
      await waitForOutput(child, /notifier running/);
      await eventually(
        "the notifier's /healthz to answer 200",
        async () => {
          if (child.exitCode !== null) throw new Error(`the notifier exited (${child.exitCode}): ${output}`);
          const status = await fetch(`http://127.0.0.1:${port}/healthz`).then(
            (r) => r.status,
            () => 0,
          );
          return status === 200;
        },
        { timeoutMs: 30_000, onError: "fail" },
      );
      return { child, port, output: () => output };
    }

    async function kill(child: ChildProcessWithoutNullStreams): Promise<void> {
      const exit = once(child, "exit");
      child.kill("SIGKILL");
      await exit;
    }

    async function list(...args: string[]): Promise<z.infer<typeof ListSchema>> {
      const run = await runCli(["notifications", "list", "--json", ...args], { NATS_URL: nats.url });
      assert.equal(run.code, 0, run.stderr);
      return ListSchema.parse(JSON.parse(run.stdout));
    }

    it("says where it sends at start, and drains on SIGTERM (exit 0)", async () => {
      const { child, output } = await startNotifier();
      assert.match(
        output(),
        new RegExp(
          `sending site local's transitions to webhook http://127\\.0\\.0\\.1:${hook.port}/… \\(${webhookTargetId(hook.url)}\\)`,
        ),
      );
      assert.ok(!output().includes(SECRET), "the secret is never printed");
      const sent = makeTransition("1");
      await publisher.publish(sent);
      await hook.waitForDelivered(1);
      const exit = once(child, "exit");
      child.kill("SIGTERM");
      const [code] = (await exit) as [number | null];
      assert.equal(code, 0, output());
    });

    it("says plainly when it has no target at all", async () => {
      const port = await freePort();
      const child = spawnCli(["notifier"], {
        NATS_URL: nats.url,
        SECRET_MOUNT_PATH: dir,
        HEALTH_HOST: "127.0.0.1",
        NOTIFIER_PORT: String(port),
      });
      children.push(child);
      await waitForOutput(child, /no target: set NOTIFY_WEBHOOK_URL or ALERTMANAGER_URL/);
    });

    it("SIGKILLed mid-send and started again: the receiver gets every transition, the one in flight again with the same X-Fanwatch-Delivery", async () => {
      const first = await startNotifier();
      hook.mode = "hold";
      const sent = Array.from({ length: 4 }, (_, i) => makeTransition(`fan-${i}`));
      for (const t of sent) await publisher.publish(t);
      const [held] = await hook.waitForRequests(1);
      assert.equal(held?.headers["x-fanwatch-delivery"], sent[0]?.id);
      await kill(first.child);
      hook.mode = 200; // the held request stays unanswered: its sender is gone
      await startNotifier();
      await hook.waitForDelivered(sent.length, 90_000);
      assert.deepEqual(
        hook.deliveryIds,
        sent.map((t) => t.id),
        "every transition, in order, none lost",
      );
      assert.equal(new Set(hook.requests.map((r) => r.headers["x-fanwatch-delivery"])).size, sent.length);
      const repeats = hook.requests.filter((r) => r.headers["x-fanwatch-delivery"] === sent[0]?.id);
      assert.ok(repeats.length >= 2, "the one in flight was sent again");
      for (const r of hook.requests) assert.ok(validSignature(r, SECRET), "signed with the key from the file");
    });

    it("turns what the receiver did not take within NOTIFY_MAX_AGE into dead letters that list shows and redrive delivers", async () => {
      await hook.stop();
      await startNotifier({ NOTIFY_MAX_AGE: "2s" });
      const target = webhookTargetId(hook.url);
      const sent = [makeTransition("7"), makeTransition("8", "warning")];
      for (const t of sent) await publisher.publish(t);
      const listed = await eventuallyValue(
        "two dead letters",
        () => list(),
        // The second is acknowledged just after its dead letter is stored.
        (l) => l.deadLetters.length === 2 && l.queues.every((q) => q.pending === 0),
        30_000,
      );
      assert.deepEqual(
        listed.deadLetters.map((d) => [d.target, d.transition?.id]),
        sent.map((t) => [target, t.id]),
      );
      // Tried while the receiver was down; or, read once already older than NOTIFY_MAX_AGE (the
      // second waits while the first is retried), not tried at all.
      for (const d of listed.deadLetters)
        assert.match(d.lastError, d.attempts >= 1 ? /cannot reach/ : /not sent: .* older than NOTIFY_MAX_AGE/);
      assert.deepEqual(listed.queues, [{ target, pending: 0, oldestPendingSeconds: 0, orphan: false }]);
      const text = await runCli(["notifications", "list"], { NATS_URL: nats.url });
      assert.equal(text.code, 0, text.stderr);
      for (const t of sent) assert.ok(text.stdout.includes(t.id), text.stdout);
      assert.match(text.stdout, new RegExp(`${target}\\s+nothing pending`));
      assert.match(text.stderr, /fanwatch notifications redrive --all/);

      const unknown = await runCli(["notifications", "list", "--target", "webhook-00000000"], { NATS_URL: nats.url });
      assert.equal(unknown.code, 2, unknown.stderr);
      assert.match(unknown.stderr, new RegExp(`the targets are ${target}`));

      await hook.listen();
      const one = await runCli(["notifications", "redrive", "--id", sent[0]?.id ?? ""], { NATS_URL: nats.url });
      assert.equal(one.code, 0, one.stderr);
      assert.match(one.stdout, new RegExp(`redriven 1 dead letter \\(${target}: 1\\)`));
      await hook.waitForDelivered(1);
      const rest = await runCli(["notifications", "redrive", "--all", "--json"], { NATS_URL: nats.url });
      assert.equal(rest.code, 0, rest.stderr);
      assert.deepEqual(JSON.parse(rest.stdout), { redriven: 1, byTarget: { [target]: 1 }, skipped: 0 });
      await hook.waitForDelivered(2);
      assert.deepEqual(
        hook.deliveryIds,
        sent.map((t) => t.id),
      );
      assert.equal((await list()).deadLetters.length, 0);

      const none = await runCli(["notifications", "redrive", "--all"], { NATS_URL: nats.url });
      assert.equal(none.code, 1, none.stderr);
      assert.match(none.stderr, /no dead letter to redrive.*there are none.*\[FANWATCH_NOTIFY_NO_MATCH\]/);
    });

    it("list marks the queue of a webhook no longer configured as an orphan, and shows a site only its own", async () => {
      const first = await startNotifier();
      await kill(first.child);
      const gone = webhookTargetId(hook.url);
      const other = await WebhookReceiver.start("/other");
      try {
        await startNotifier({ NOTIFY_WEBHOOK_URL: other.url });
        const kept = webhookTargetId(other.url);
        const listed = await list();
        assert.deepEqual(
          listed.queues.map((q) => [q.target, q.orphan]),
          [
            [gone, true],
            [kept, false],
          ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
        );
        const text = await runCli(["notifications", "list"], { NATS_URL: nats.url });
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, new RegExp(`${gone}\\s+nothing pending\\s+\\(orphan`));
        assert.doesNotMatch(text.stdout, new RegExp(`${kept}.*orphan`));
        assert.ok(text.stderr.includes(`nats consumer rm FAN_HEALTH_EVENTS notify-local-${gone}`), text.stderr);
        const elsewhere = await runCli(["notifications", "list", "--json"], { NATS_URL: nats.url, SITE: "plant-b" });
        assert.equal(elsewhere.code, 0, elsewhere.stderr);
        assert.deepEqual(ListSchema.parse(JSON.parse(elsewhere.stdout)).queues, []);
      } finally {
        await other.stop();
      }
    });
  });
});
