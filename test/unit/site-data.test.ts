import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../lib/errors.js";
import type { EvidenceReading } from "../../lib/nats/evidence.js";
import { buildTrainingSet, describeTrainingSet, labelSiteReadings } from "../../model/site-data.js";
import type { SiteHistory } from "../../model/site-history.js";

const t0 = Date.UTC(2026, 11, 1, 8, 0, 0);

/** `count` readings one second apart from `start`, at `temperature` (the rest healthy). */
function readings(start: number, count: number, temperature: number, fault: 0 | 1): EvidenceReading[] {
  return Array.from({ length: count }, (_, i) => ({
    at: new Date(start + i * 1_000).toISOString(),
    rotation: 600,
    temperature,
    vibration: 150,
    sound: 48,
    probability: fault === 1 ? 0.99 : 0.01,
    fault,
  }));
}

/** Fan 1: a confirmed fault that cleared; fan 2 (runs hot): a false alarm; fan 3: healthy samples. */
const history: SiteHistory = {
  site: "plant-a",
  episodes: [
    {
      deviceID: "1",
      alarmId: `1@${new Date(t0 + 10_000).toISOString()}`,
      result: "confirmed",
      clearedAt: t0 + 20_000,
      lead: readings(t0, 10, 40, 0),
      // Open for 10 s, the model calling the last 2 of them healthy (the quiet that cleared it), then 10 once cleared.
      during: [...readings(t0 + 10_000, 8, 53, 1), ...readings(t0 + 18_000, 12, 40, 0)],
    },
    {
      deviceID: "2",
      alarmId: `2@${new Date(t0 + 5_000).toISOString()}`,
      result: "false-alarm",
      clearedAt: null,
      lead: readings(t0, 5, 48, 1),
      during: readings(t0 + 5_000, 15, 48, 1),
    },
  ],
  healthy: readings(t0, 10, 40, 0).map((reading) => ({ deviceID: "3", reading })),
  healthyLeftOut: 4,
  unlabelled: 2,
};

describe("a training set from the site's findings", () => {
  it("labels a confirmed episode's readings while it was open as faults, and a false alarm's and the healthy sample as healthy", () => {
    const rows = labelSiteReadings(history);
    const of = (origin: string) => rows.filter((r) => r.origin === origin);
    // Confirmed: the 8 readings from its opening to the last the model called a fault; not the
    // lead, not the quiet ones that cleared it, not those once cleared.
    assert.equal(of("confirmed").length, 8);
    assert.ok(of("confirmed").every((r) => r.faulty === 1 && r.ms >= t0 + 10_000 && r.ms < t0 + 18_000));
    // False alarm: lead and during, all healthy, whatever the model said of them.
    assert.equal(of("false-alarm").length, 20);
    assert.ok(of("false-alarm").every((r) => r.faulty === 0 && r.features[1] === 48));
    assert.equal(of("healthy").length, 10);
    assert.ok(of("healthy").every((r) => r.faulty === 0 && r.deviceID === "3"));
    assert.equal(rows[0]?.time, "2026-12-01 08:00:10");
  });

  it("holds out the newest share of each episode and fan, and mixes in at least as many base rows as site rows", () => {
    const set = buildTrainingSet(history, { baseRows: 10, heldOut: 0.2, siteShare: 0.25 });
    // 38 site rows: 1 of the confirmed 8, 4 of the false alarm's 20, 2 of the 10 samples held out, the newest.
    assert.deepEqual(
      set.heldOut.site.map((r) => [r.origin, r.ms - t0]),
      [
        ["confirmed", 17_000],
        ["false-alarm", 16_000],
        ["false-alarm", 17_000],
        ["false-alarm", 18_000],
        ["false-alarm", 19_000],
        ["healthy", 8_000],
        ["healthy", 9_000],
      ],
    );
    // Base: 38 rows (the site's 38, more than --base-rows 10), of 38 of the generator's fans (23
    // of them faulty, by the generator's seed); 8 fresh ones held out.
    assert.equal(set.summary.base.rows, 38);
    assert.equal(set.summary.base.faulty, 23);
    assert.equal(set.heldOut.base.length, 8);
    assert.equal(set.dataset.rows.length, 31 + 38);
    assert.match(set.dataset.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(set.summary, {
      site: "plant-a",
      episodes: { confirmed: 1, falseAlarm: 1, unlabelled: 2 },
      readings: { confirmed: 8, "false-alarm": 20, healthy: 10 },
      healthyLeftOut: 4,
      siteRepeat: 1,
      base: { rows: 38, faulty: 23 },
      trainRows: 69,
      heldOutRows: { site: 7, base: 8 },
    });
    assert.equal(
      describeTrainingSet(set.summary),
      "site plant-a: 1 confirmed episodes (8 fault readings), 1 false-alarm episodes (20 healthy readings), 10 healthy samples (healthy ones 1×); base: 38 generated rows (23 faulty, generate-data --fans 200 --seed 2)",
    );
    // The same history gives the same set.
    assert.equal(
      buildTrainingSet(history, { baseRows: 10, heldOut: 0.2, siteShare: 0.25 }).dataset.sha256,
      set.dataset.sha256,
    );
    // The site's 24 healthy training rows repeated up to about a share of the training set
    // (against 1,000 base rows at 0.25: 14×), its 7 confirmed-fault rows once.
    const weighted = buildTrainingSet(history, { baseRows: 1_000, heldOut: 0.2, siteShare: 0.25 });
    assert.equal(weighted.summary.base.rows, 1_000);
    assert.equal(weighted.summary.siteRepeat, 14);
    assert.equal(weighted.dataset.rows.length, 24 * 14 + 7 + 1_000);
    assert.equal(weighted.dataset.rows.filter((r) => r.faulty === 1 && r.time.startsWith("2026-12-01")).length, 7);
  });

  it("refuses a held-out share or base size that cannot be", () => {
    for (const options of [
      { baseRows: 10, heldOut: 0, siteShare: 0.25 },
      { baseRows: 10, heldOut: 1, siteShare: 0.25 },
      { baseRows: 0, heldOut: 0.2, siteShare: 0.25 },
      { baseRows: 1.5, heldOut: 0.2, siteShare: 0.25 },
      { baseRows: 10, heldOut: 0.2, siteShare: 1 },
      { baseRows: 10, heldOut: 0.2, siteShare: -0.1 },
    ])
      assert.throws(() => buildTrainingSet(history, options), UsageError);
  });
});
