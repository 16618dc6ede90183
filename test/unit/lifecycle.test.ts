import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { ServiceBase } from "../../lib/infra/service.js";
import { Lifecycle } from "../../runtime/system/lifecycle.js";

/** A lifecycle whose warnings and console lines are kept. */
function lifecycle(stepTimeoutMs?: number): {
  parts: Lifecycle;
  warnings: Array<Record<string, unknown>>;
  said: string[];
} {
  const warnings: Array<Record<string, unknown>> = [];
  const log = pino(
    { level: "warn" },
    { write: (line: string) => void warnings.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const said: string[] = [];
  return {
    parts: new Lifecycle({
      log,
      say: (line) => said.push(line),
      ...(stepTimeoutMs === undefined ? {} : { stepTimeoutMs }),
    }),
    warnings,
    said,
  };
}

/** A service that records what happens to it; `behaviour` makes a step fail or hang. */
class Recorded extends ServiceBase {
  constructor(
    readonly name: string,
    private readonly events: string[],
    private readonly behaviour: { start?: () => Promise<void>; drain?: () => Promise<void> } = {},
  ) {
    super();
  }

  protected async onStart(): Promise<void> {
    await this.behaviour.start?.();
    this.events.push(`start ${this.name}`);
  }

  protected override async onDrain(): Promise<void> {
    await this.behaviour.drain?.();
    this.events.push(`drain ${this.name}`);
  }

  protected async onClose(): Promise<void> {
    this.events.push(`close ${this.name}`);
  }
}

const NAMES = ["broker", "gateway", "page", "connector", "fleet"];

describe("lifecycle", () => {
  it("drains every service in reverse order of start, each closed before the next drains", async () => {
    const { parts } = lifecycle();
    const events: string[] = [];
    for (const name of NAMES) await parts.start(new Recorded(name, events));
    await parts.stop();
    assert.deepEqual(events, [
      ...NAMES.map((n) => `start ${n}`),
      ...[...NAMES].reverse().flatMap((n) => [`drain ${n}`, `close ${n}`]),
    ]);
  });

  it("stops once, however often stop() is called, also while it is stopping", async () => {
    const { parts } = lifecycle();
    const events: string[] = [];
    await parts.start(new Recorded("gateway", events));
    await Promise.all([parts.stop(), parts.stop()]);
    await parts.stop();
    assert.deepEqual(events, ["start gateway", "drain gateway", "close gateway"]);
    await assert.rejects(parts.start(new Recorded("late", events)), /cannot start late: stopping/);
  });

  it("closes a service that fails to drain, says so on the console, and stops the others", async () => {
    const { parts, warnings, said } = lifecycle();
    const events: string[] = [];
    await parts.start(new Recorded("broker", events));
    await parts.start(
      new Recorded("writer", events, { drain: () => Promise.reject(new Error("InfluxDB is unreachable")) }),
    );
    await parts.start(new Recorded("fleet", events));
    await parts.stop();
    assert.deepEqual(events.slice(3), ["drain fleet", "close fleet", "close writer", "drain broker", "close broker"]);
    assert.deepEqual(
      warnings.map((w) => [w.event, w.service, w.err]),
      [["stop_failed", "writer", "InfluxDB is unreachable"]],
    );
    assert.deepEqual(said, ["writer failed to drain: InfluxDB is unreachable; stopping the rest"]);
  });

  it("closes a service whose drain never finishes, and goes on", async () => {
    const { parts, warnings } = lifecycle(20);
    const events: string[] = [];
    await parts.start(new Recorded("broker", events));
    await parts.start(new Recorded("stuck", events, { drain: () => new Promise(() => {}) }));
    await parts.stop();
    assert.deepEqual(events.slice(2), ["close stuck", "drain broker", "close broker"]);
    assert.deepEqual(
      warnings.map((w) => [w.event, w.service]),
      [["stop_timeout", "stuck"]],
    );
  });

  it("registers no service whose start failed, which let go of what it took", async () => {
    const { parts } = lifecycle();
    const events: string[] = [];
    const gateway = new Recorded("gateway", events, { start: () => Promise.reject(new Error("port 8080 is in use")) });
    await assert.rejects(parts.start(gateway), /port 8080 is in use/);
    assert.deepEqual(events, ["close gateway"]);
    await parts.stop();
    assert.deepEqual(events, ["close gateway"], "not drained again");
    assert.equal(await gateway.closed, undefined);
  });
});
