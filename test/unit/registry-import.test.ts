import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deviceIdProblem, FanRecordSchema } from "../../lib/registry/fan-record.js";
import { importFormat, parseImport, parseLimit, splitTags } from "../../lib/registry/import.js";

describe("device ids the registry holds", () => {
  it("takes letters, digits, '.', '_' and '-', up to 64 characters", () => {
    for (const id of ["1", "fan-17", "plant.b7", "A_b-C.d", "x".repeat(64)])
      assert.equal(deviceIdProblem(id), undefined, id);
  });

  it("refuses what cannot be an MQTT topic level or a username, and says why", () => {
    assert.match(deviceIdProblem("a/b") ?? "", /never "\/", "\+", "#"/);
    // ":" ends a user name in Mosquitto's password file: fan-a:b could never log in.
    for (const id of ["a+b", "#", "a b", "é", "fan\n1", "a:b"]) assert.notEqual(deviceIdProblem(id), undefined, id);
    assert.match(deviceIdProblem("") ?? "", /empty/);
    assert.match(deviceIdProblem("x".repeat(65)) ?? "", /at most 64 characters, not 65/);
  });
});

describe("fans import: CSV", () => {
  it("reads every field, tags separated by ';', and keeps the line numbers", () => {
    const text =
      "id,name,site,location,type,tags\n7,Hall A fan,plant-b,roof 2,ebm-W3G,critical; roof ;\n\n8,,plant-b,,,\n";
    const { rows, problems } = parseImport(text, "csv");
    assert.deepEqual(problems, []);
    assert.deepEqual(rows, [
      {
        line: 2,
        id: "7",
        details: {
          name: "Hall A fan",
          site: "plant-b",
          location: "roof 2",
          type: "ebm-W3G",
          tags: ["critical", "roof"],
        },
      },
      // An empty cell sets the field empty: the file says what the fan is.
      { line: 4, id: "8", details: { name: "", site: "plant-b", location: "", type: "", tags: [] } },
    ]);
  });

  it("leaves out the fields of columns the header lacks, in any order and case", () => {
    const { rows, problems } = parseImport("Site,ID\nplant-c,9\n", "csv");
    assert.deepEqual(problems, []);
    assert.deepEqual(rows, [{ line: 2, id: "9", details: { site: "plant-c" } }]);
  });

  it("names every bad line and why, not the first only", () => {
    const text = [
      "id,name,tags",
      "ok-1,fine,",
      "a/b,slash,",
      ",no id,",
      "ok-2,two,cells,too many",
      `ok-3,${"n".repeat(201)},`,
      "ok-1,again,",
    ].join("\n");
    const { problems } = parseImport(text, "csv");
    assert.deepEqual(
      problems.map((p) => p.line),
      [3, 4, 5, 6, 7],
    );
    assert.match(problems[0]?.problem ?? "", /may hold only letters/);
    assert.match(problems[1]?.problem ?? "", /no id/);
    assert.match(problems[2]?.problem ?? "", /4 cells; the header has 3/);
    assert.match(problems[3]?.problem ?? "", /^name: /);
    assert.match(problems[4]?.problem ?? "", /fan "ok-1" is on line 2 already/);
  });

  it("refuses a header with an unknown or missing id column, and an empty file", () => {
    assert.match(parseImport("id,nmae\n1,x\n", "csv").problems[0]?.problem ?? "", /column 2 "nmae" is not a field/);
    assert.match(parseImport("name\nx\n", "csv").problems[0]?.problem ?? "", /no "id" column/);
    assert.deepEqual(parseImport("", "csv").problems, [{ line: 1, problem: "the file holds no fans" }]);
    assert.deepEqual(parseImport("id,name\n", "csv").problems, [{ line: 1, problem: "the file holds no fans" }]);
  });

  it("names the line of a broken quote", () => {
    const { problems } = parseImport('id,name\n1,ok\n2,"unclosed\n', "csv");
    assert.equal(problems.length, 1);
    assert.match(problems[0]?.problem ?? "", /^not CSV/);
  });
});

describe("fans import: JSON lines", () => {
  it("reads objects with the same fields, tags as a list or as ';' text, and limits", () => {
    const text = [
      '{"id":"7","name":"Hall A","tags":["a","b"]}',
      "",
      '{"id":"8","tags":"x; y","limits":{"temperature":{"min":-20,"max":90}}}',
    ].join("\n");
    const { rows, problems } = parseImport(text, "jsonl");
    assert.deepEqual(problems, []);
    assert.deepEqual(rows, [
      { line: 1, id: "7", details: { name: "Hall A", tags: ["a", "b"] } },
      { line: 3, id: "8", details: { tags: ["x", "y"], limits: { temperature: { min: -20, max: 90 } } } },
    ]);
  });

  it("names every bad line: not JSON, not an object, an unknown field, a bad value", () => {
    const text = [
      '{"id":"1"}',
      "{not json",
      "[1]",
      '{"id":"2","state":"active"}',
      '{"id":"3","name":5}',
      '{"id":"4","limits":{"temperature":{"min":90,"max":-20}}}',
    ].join("\n");
    const { problems } = parseImport(text, "jsonl");
    assert.deepEqual(
      problems.map((p) => p.line),
      [2, 3, 4, 5, 6],
    );
    assert.match(problems[0]?.problem ?? "", /^not JSON/);
    assert.match(problems[1]?.problem ?? "", /not a JSON object/);
    assert.match(problems[2]?.problem ?? "", /"state" is not a field/);
    assert.match(problems[3]?.problem ?? "", /^name: /);
    assert.match(problems[4]?.problem ?? "", /min must be below max/);
  });
});

describe("the import file's format, tags and --limit", () => {
  it("goes by the name, else by the first character", () => {
    assert.equal(importFormat("fans.csv", "{"), "csv");
    assert.equal(importFormat("fans.jsonl", "id"), "jsonl");
    assert.equal(importFormat("fans.txt", '\uFEFF {"id":"1"}'), "jsonl");
    assert.equal(importFormat("fans", "id,name"), "csv");
  });

  it("splits tags", () => {
    assert.deepEqual(splitTags(" a ;b;; "), ["a", "b"]);
    assert.deepEqual(splitTags(""), []);
  });

  it("parses sensor=min:max and refuses the rest", () => {
    assert.deepEqual(parseLimit("temperature=-20:90"), { sensor: "temperature", min: -20, max: 90 });
    assert.throws(() => parseLimit("pressure=0:1"), /sensor of rotation, temperature, vibration, sound/);
    // Narrower only: predict and score check the defaults, so a wider limit would pass the connector and fail there.
    assert.throws(() => parseLimit("temperature=-20:400"), /may only narrow the defaults \(-60 to 250\)/);
    const record = { id: "9", state: "active", created: "2026-12-07T10:00:00.000Z" };
    assert.equal(
      FanRecordSchema.safeParse({ ...record, limits: { temperature: { min: -20, max: 90 } } }).success,
      true,
    );
    assert.equal(
      FanRecordSchema.safeParse({ ...record, limits: { rotation: { min: 0, max: 30_000 } } }).success,
      false,
    );
    assert.throws(() => parseLimit("sound=a:1"), /must be numbers/);
    assert.throws(() => parseLimit("sound=5:1"), /min must be below max/);
    assert.throws(() => parseLimit("sound=5"), /not sensor=min:max/);
  });
});
