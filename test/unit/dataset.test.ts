import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DataFormatError } from "../../lib/errors.js";
import { FAULTY_RANGES, HEALTHY_RANGES } from "../../lib/domain/fan-ranges.js";
import { FEATURES } from "../../lib/domain/features.js";
import { CSV_COLUMNS, generateReadings, parseCsv, readCsv, toCsv } from "../../model/dataset.js";

describe("generateReadings", () => {
  it("is deterministic for a seed and differs between seeds", () => {
    const a = toCsv(generateReadings({ fans: 10, rows: 500, seed: 7 }));
    const b = toCsv(generateReadings({ fans: 10, rows: 500, seed: 7 }));
    const c = toCsv(generateReadings({ fans: 10, rows: 500, seed: 8 }));
    assert.equal(a, b);
    assert.notEqual(a, c);
  });

  it("balances the classes and keeps each fan's readings in its class's ranges, one decimal", () => {
    const rows = generateReadings({ fans: 20, rows: 4000, seed: 1 });
    assert.equal(rows.filter((r) => r.faulty === 1).length, 2000);
    const labelOf = new Map<string, number>();
    for (const r of rows) {
      assert.equal(labelOf.get(r.deviceID) ?? r.faulty, r.faulty, `fan ${r.deviceID} changed class`);
      labelOf.set(r.deviceID, r.faulty);
      const ranges = r.faulty === 1 ? FAULTY_RANGES : HEALTHY_RANGES;
      FEATURES.forEach((name, i) => {
        const v = r.features[i] as number;
        assert.ok(
          v >= ranges[name].min && v <= ranges[name].max,
          `${name} ${v} outside ${JSON.stringify(ranges[name])}`,
        );
        assert.equal(Math.round(v * 10) / 10, v);
      });
    }
    assert.equal(labelOf.size, 20);
  });

  it("writes the reference header and timestamps", () => {
    const csv = toCsv(generateReadings({ fans: 2, rows: 4, seed: 1 }));
    const lines = csv.trim().split("\n");
    assert.equal(lines[0], CSV_COLUMNS.join(","));
    assert.match(lines[1] ?? "", /^1,2020-10-02 10:00:00,\d+\.\d,\d+\.\d,\d+\.\d,\d+\.\d,[01]$/);
    assert.match(lines[3] ?? "", /^1,2020-10-02 10:00:02,/);
  });

  it("rejects impossible sizes", () => {
    assert.throws(() => generateReadings({ fans: 0, rows: 10, seed: 1 }), /--fans/);
    assert.throws(() => generateReadings({ fans: 2, rows: -1, seed: 1 }), /--rows/);
  });
});

describe("parseCsv", () => {
  const header = CSV_COLUMNS.join(",");

  it("round-trips generated data and accepts the reference file's quirks (BOM, CRLF, quotes)", () => {
    const rows = generateReadings({ fans: 3, rows: 30, seed: 2 });
    assert.deepEqual(parseCsv(toCsv(rows)), rows);
    const reference = `\ufeff${header}\r\n"7",2020-10-02 10:00:00,612.3,40.1,151.7,48.9,0\r\n`;
    assert.deepEqual(parseCsv(reference)[0], {
      deviceID: "7",
      time: "2020-10-02 10:00:00",
      features: [612.3, 40.1, 151.7, 48.9],
      faulty: 0,
    });
  });

  const bad: Array<[string, string, RegExp]> = [
    ["an empty file", "", /empty/],
    ["another header", "id,rotation\n1,2\n", /line 1: the header is "id,rotation"; expected "DeviceID,Time/],
    ["a header without rows", `${header}\n`, /no readings/],
    [
      "a word for a number",
      `${header}\n1,2020-10-02 10:00:00,600,40,150,48,0\n2,2020-10-02 10:00:00,600,hot,150,48,1\n`,
      /line 3, column Temperature: "hot" is not a number/,
    ],
    [
      "an empty number",
      `${header}\n1,2020-10-02 10:00:00,600,40,,48,0\n`,
      /line 2, column Vibration: "" is not a number/,
    ],
    ["a missing column", `${header}\n1,2020-10-02 10:00:00,600,40,150,48\n`, /line 2: 6 columns; expected 7/],
    [
      "a label that is not 0/1",
      `${header}\n1,2020-10-02 10:00:00,600,40,150,48,2\n`,
      /line 2, column Faulty: "2" is not 0 or 1/,
    ],
    ["a bad time", `${header}\n1,yesterday,600,40,150,48,1\n`, /line 2, column Time: "yesterday"/],
  ];
  for (const [what, text, message] of bad) {
    it(`rejects ${what} with the line and column`, () => {
      assert.throws(
        () => parseCsv(text, "x.csv"),
        (error: unknown) => error instanceof DataFormatError && message.test(error.message),
      );
    });
  }

  it("hashes the file it reads", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fanwatch-"));
    const file = join(dir, "d.csv");
    await writeFile(file, toCsv(generateReadings({ fans: 2, rows: 10, seed: 1 })));
    const { sha256, rows } = await readCsv(file);
    assert.equal(rows.length, 10);
    const { createHash } = await import("node:crypto");
    assert.equal(
      sha256,
      createHash("sha256")
        .update(await readFile(file))
        .digest("hex"),
    );
    await assert.rejects(readCsv(join(dir, "missing.csv")), /cannot read/);
    await rm(dir, { recursive: true, force: true });
  });
});
