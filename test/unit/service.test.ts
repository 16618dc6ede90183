import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { ServiceBase } from "../../lib/infra/service.js";
import { Supervisor } from "../../lib/infra/supervisor.js";
import { eventually } from "../support/eventually.js";
import { ManualClock } from "../support/manual-clock.js";

/** A service whose work is a promise the test settles, and which can die by itself. */
class Toy extends ServiceBase {
  readonly name = "toy";
  readonly events: string[] = [];
  finishWork: () => void = () => {};
  #work = new Promise<void>((resolve) => (this.finishWork = resolve));

  constructor(private readonly startFails = false) {
    super();
  }

  die(error: Error): void {
    this.ended(error);
  }

  protected async onStart(): Promise<void> {
    this.events.push("start");
    if (this.startFails) throw new Error("port in use");
  }

  protected override async onDrain(): Promise<void> {
    this.events.push("drain");
    await this.#work;
    this.events.push("work done");
  }

  protected async onClose(): Promise<void> {
    this.events.push("close");
    this.finishWork(); // closing abandons the work
  }
}

describe("a service (lib/infra/service.ts)", () => {
  it("drains: finishes its work, then closes, and `closed` says it ended in order", async () => {
    const toy = new Toy();
    await toy.start();
    const drained = toy.drain();
    assert.equal(toy.stopping, true);
    toy.finishWork();
    await drained;
    assert.deepEqual(toy.events, ["start", "drain", "work done", "close"]);
    assert.equal(await toy.closed, undefined);
  });

  it("is safe to stop again and in any order: a second drain, a close during a drain", async () => {
    const toy = new Toy();
    await toy.start();
    const first = toy.drain();
    assert.equal(toy.drain(), first);
    await new Promise((resolve) => setImmediate(resolve)); // the drain is under way
    await toy.close(); // cuts the drain short: the work is abandoned
    await first;
    await toy.drain();
    assert.deepEqual(toy.events, ["start", "drain", "close", "work done"]);
  });

  it("lets go of what it took when start fails, and cannot start once stopped", async () => {
    const failing = new Toy(true);
    await assert.rejects(failing.start(), /port in use/);
    assert.deepEqual(failing.events, ["start", "close"]);
    const stopped = new Toy();
    await stopped.close();
    await assert.rejects(stopped.start(), /toy cannot start: it was stopped/);
  });

  it("resolves `closed` with the error when it ends by itself", async () => {
    const toy = new Toy();
    await toy.start();
    toy.die(new Error("nats-server exited (SIGKILL)"));
    assert.match((await toy.closed)?.message ?? "", /SIGKILL/);
  });
});

describe("a supervisor (lib/infra/supervisor.ts)", () => {
  const log = pino({ level: "silent" });

  it("starts a fresh instance after one ends by itself, with a backoff that doubles, and says so", async () => {
    const clock = new ManualClock();
    const made: Toy[] = [];
    const said: string[] = [];
    const supervisor = new Supervisor({
      create: () => {
        const toy = new Toy(made.length === 1); // the second instance fails to start
        made.push(toy);
        return toy;
      },
      log,
      clock,
      say: (line) => said.push(line),
      baseMs: 100,
    });
    await supervisor.start();
    made[0]?.die(new Error("exited (SIGKILL)"));
    await eventually("the first restart is planned", () => clock.waiting === 1);
    clock.advance();
    await eventually("the second restart is planned", () => made.length === 2 && clock.waiting === 1);
    clock.advance();
    await eventually("a third instance runs", () => supervisor.current === made[2] && said.length === 3);
    assert.equal(supervisor.restarts, 2);
    // Jitter is ±50 %: the first wait is 50–150 ms, the second (after a failed start) 100–300 ms.
    const waits = said.slice(0, 2).map((line) => Number(/restarting in (\d+) ms/.exec(line)?.[1]));
    assert.ok(waits[0]! >= 50 && waits[0]! <= 150, said[0]);
    assert.ok(waits[1]! >= 100 && waits[1]! <= 300, said[1]);
    assert.match(said[0] ?? "", /^toy stopped: exited \(SIGKILL\); restarting in \d+ ms \(restart 1\)$/);
    assert.equal(said[2], "toy is back (restart 2)");
    made[2]?.finishWork();
    await supervisor.drain();
    assert.deepEqual(
      made[2]?.events,
      ["start", "drain", "work done", "close"],
      "drain reaches the instance running then",
    );
  });

  it("restarts nothing once stopping, and an orderly stop of the instance is no failure", async () => {
    const clock = new ManualClock();
    const made: Toy[] = [];
    const supervisor = new Supervisor({ create: () => (made.push(new Toy()), made.at(-1) as Toy), log, clock });
    await supervisor.start();
    made[0]?.finishWork();
    await supervisor.drain();
    made[0]?.die(new Error("late"));
    assert.equal(clock.waiting, 0);
    assert.equal(made.length, 1);
  });
});
