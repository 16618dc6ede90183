import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { attemptDelivery, type AttemptOptions } from "../../notifier/attempts.js";
import { NotifierMetrics } from "../../notifier/metrics.js";
import { DeliveryError, type DeliveryTarget, type Notification } from "../../notifier/target.js";
import { createLogger } from "../../lib/infra/log.js";
import { makeTransition } from "../support/notifier-events.js";

const DAY = 86_400_000;

/** A target that records what it is given, and fails the first `failing` attempts (retryably). */
function target(appliesState: boolean, failing = 0): DeliveryTarget & { got: Notification[] } {
  const got: Notification[] = [];
  let left = failing;
  return {
    id: appliesState ? "alertmanager" : "webhook-00000000",
    description: "a target of the test",
    appliesState,
    got,
    async deliver(notification) {
      if (left-- > 0) throw new DeliveryError("503 from the receiver", true, { reason: "http_503" });
      got.push(notification);
    },
  };
}

function options(t: DeliveryTarget): AttemptOptions {
  return {
    target: t,
    maxAgeMs: DAY,
    retryMaxMs: 10,
    metrics: new NotifierMetrics(),
    log: createLogger("notifier-attempts-test", "silent"),
    inTurn: (send) => send(),
    sleep: () => Promise.resolve(),
    stopping: () => false,
    random: () => 0.5,
  };
}

const notification = (): Notification => ({ transition: makeTransition("7", "cleared"), link: "http://page/?fan=7" });

describe("a notification older than NOTIFY_MAX_AGE when read", () => {
  it("is a dead letter for a webhook, never sent: stale news", async () => {
    const webhook = target(false);
    const outcome = await attemptDelivery(options(webhook), notification(), Date.now() - 2 * DAY);
    assert.equal(outcome.kind, "dead");
    assert.equal(webhook.got.length, 0);
  });

  it("is applied by Alertmanager all the same (a clear missed while the notifier was away must end the alert), retries included", async () => {
    const alertmanager = target(true, 2);
    const outcome = await attemptDelivery(options(alertmanager), notification(), Date.now() - 2 * DAY);
    assert.deepEqual(outcome, { kind: "delivered", attempts: 3 });
    assert.equal(alertmanager.got.length, 1);
  });
});
