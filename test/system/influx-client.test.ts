import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import { after, before, describe, it } from "node:test";
import { createLineWriter } from "../../connectors/influxdb/influx-client.js";
import { InfluxUnavailableError } from "../../lib/errors.js";
import { freePort } from "../../lib/infra/net.js";
import { INFLUX_WRITER, startInfluxDB, type Influx } from "../support/influxdb.js";

const S = 1_000_000_000; // nanoseconds in a second: lines are written with precision=ns

/** The rows of a query as objects, e.g. [{ time, deviceID, rotation }]. */
async function rows(influx: Influx, q: string): Promise<Array<Record<string, unknown>>> {
  const [series] = await influx.query(q);
  return (series?.values ?? []).map((v) => Object.fromEntries(series?.columns.map((c, i) => [c, v[i]]) ?? []));
}

describe("InfluxDB line writer against a real InfluxDB 1.6", () => {
  let influx: Influx;
  before(async () => (influx = await startInfluxDB()));
  after(() => influx.stop());

  it("rejects only the lines InfluxDB cannot parse, with its reason, and stores the others", async () => {
    const writer = createLineWriter({ api: "v1", url: influx.url, database: "fan" });
    const outcome = await writer.write([
      `parse,deviceID=1 rotation=1 ${1 * S}`,
      `parse,deviceID=2 rotation=2 99999999999999999999`, // what 9999-12-31 would be in ns: beyond int64
      `parse,deviceID=3 rotation=3 ${3 * S}`,
      `parse,deviceID=4 rotation= ${4 * S}`,
      `parse,deviceID=5 rotation=5 ${5 * S}`,
    ]);
    assert.deepEqual(
      outcome.rejected.map((r) => r.index),
      [1, 3],
    );
    assert.match(outcome.rejected[0]?.error ?? "", /^InfluxDB cannot parse the point: .*out of range/);
    assert.match(outcome.rejected[1]?.error ?? "", /^InfluxDB cannot parse the point: .*field/);
    assert.deepEqual(
      (await rows(influx, `SELECT rotation, deviceID FROM parse`)).map((r) => r.deviceID),
      ["1", "3", "5"],
    );
  });

  it("finds the bad lines InfluxDB does not name (field type conflicts) by splitting the batch", async () => {
    const writer = createLineWriter({ api: "v1", url: influx.url, database: "fan" });
    assert.deepEqual(await writer.write([`conflict,deviceID=0 fault=0i ${1 * S}`]), { rejected: [] });
    const lines = Array.from(
      { length: 20 },
      (_, i) => `conflict,deviceID=${i + 1} fault=${i === 6 || i === 13 ? '"yes"' : `${i % 2}i`} ${(i + 2) * S}`,
    );
    const outcome = await writer.write(lines);
    assert.deepEqual(
      outcome.rejected.map((r) => r.index),
      [6, 13],
    );
    for (const r of outcome.rejected)
      assert.match(
        r.error,
        /^InfluxDB refused the point \(400\): field type conflict: input field "fault" on measurement "conflict" is type string, already exists as type integer$/,
      );
    const stored = await rows(influx, `SELECT count(fault) FROM conflict`);
    assert.equal(stored[0]?.count, 19, "the first point and 18 of the 20");
  });

  it("rejects points beyond the retention policy, found by splitting too", async () => {
    const writer = createLineWriter({ api: "v1", url: influx.url, database: "short" });
    await influx.query(`CREATE DATABASE short WITH DURATION 1h NAME hour`);
    const now = BigInt(Date.now()) * 1_000_000n;
    const outcome = await writer.write([
      `old,deviceID=1 rotation=1 ${now}`,
      `old,deviceID=2 rotation=2 ${S}`,
      `old,deviceID=3 rotation=3 ${now}`,
    ]);
    assert.deepEqual(outcome.rejected, [
      { index: 1, error: "InfluxDB refused the point (400): points beyond retention policy" },
    ]);
  });

  it("throws, for the caller to retry, when InfluxDB does not answer", async () => {
    const writer = createLineWriter({ api: "v1", url: `http://127.0.0.1:${await freePort()}`, database: "fan" });
    await assert.rejects(
      writer.write([`m f=1 ${S}`]),
      (error: unknown) =>
        error instanceof InfluxUnavailableError && /is unreachable: .*ECONNREFUSED/.test(error.message),
    );
  });

  it("stops at once when the caller aborts, with the caller's reason", async () => {
    const writer = createLineWriter({ api: "v1", url: influx.url, database: "fan" });
    const stop = new AbortController();
    stop.abort(new Error("writer stopping"));
    await assert.rejects(writer.write([`m f=1 ${S}`], stop.signal), /writer stopping/);
  });
});

describe("a missing InfluxDB 1.x database", () => {
  it("is created, as Telegraf does, and the lines stored", async () => {
    const influx = await startInfluxDB({ createDatabase: false });
    try {
      const created: unknown[] = [];
      const log = {
        info: (fields: unknown) => created.push(fields),
      } as unknown as import("../../lib/infra/log.js").Logger;
      const writer = createLineWriter({ api: "v1", url: influx.url, database: "fan" }, { log });
      assert.deepEqual(
        await writer.write([`telemetry,deviceID=1 rotation=600 ${S}`, `telemetry,deviceID=2 rotation=700 ${S}`]),
        { rejected: [] },
      );
      assert.deepEqual(
        (await rows(influx, `SELECT rotation FROM telemetry`)).map((r) => r.rotation),
        [600, 700],
      );
      assert.deepEqual(created, [{ event: "database_created", database: "fan" }]);
    } finally {
      await influx.stop();
    }
  });

  it("without the right to create it: an error that says what to run, retried until someone does", async () => {
    const influx = await startInfluxDB({ createDatabase: false, auth: true });
    try {
      const writer = createLineWriter({ api: "v1", url: influx.url, database: "fan", ...INFLUX_WRITER });
      await assert.rejects(writer.write([`m f=1 ${S}`]), (error: unknown) => {
        assert.ok(error instanceof InfluxUnavailableError);
        assert.match(
          error.message,
          /InfluxDB has no database "fan" and refused to create it \(.*admin privilege.*\): run CREATE DATABASE "fan" as an InfluxDB admin .* or set INFLUX_DB/,
        );
        return true;
      });
      await influx.query(`CREATE DATABASE fan`);
      await influx.query(`GRANT WRITE ON fan TO ${INFLUX_WRITER.username}`);
      // As the writer does: retried (InfluxDB may take a moment to apply the grant on a busy machine).
      let outcome: unknown;
      for (let attempt = 1; outcome === undefined; attempt++) {
        outcome = await writer.write([`m f=1 ${S}`]).catch((error: unknown) => {
          if (!(error instanceof InfluxUnavailableError) || attempt >= 50) throw error;
          return new Promise<undefined>((resolve) => setTimeout(resolve, 100));
        });
      }
      assert.deepEqual(outcome, { rejected: [] });
      assert.equal((await rows(influx, `SELECT count(f) FROM m`))[0]?.count, 1);
    } finally {
      await influx.stop();
    }
  });

  it("with a wrong password: an error that names the settings to check", async () => {
    const influx = await startInfluxDB({ auth: true });
    try {
      const writer = createLineWriter({
        api: "v1",
        url: influx.url,
        database: "fan",
        username: INFLUX_WRITER.username,
        password: "wrong",
      });
      await assert.rejects(
        writer.write([`m f=1 ${S}`]),
        /InfluxDB refused the credentials \(401: .*\): check INFLUX_USERNAME and INFLUX_PASSWORD/,
      );
    } finally {
      await influx.stop();
    }
  });
});

/**
 * A stand-in for InfluxDB 2.x's /api/v2/write (Debian has no 2.x server): like 2.x, it stores
 * nothing of a batch holding a line it cannot parse (here: a line with "bad"), and answers 404
 * for any bucket but "fan".
 */
async function startV2StandIn(): Promise<{ url: string; stored: string[]; requests: number; close(): void }> {
  const state = { url: "", stored: [] as string[], requests: 0, close: () => server.close() };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      state.requests++;
      const answer = (status: number, code: string, message: string) =>
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ code, message }));
      if (new URL(req.url ?? "", "http://x").searchParams.get("bucket") !== "fan")
        return answer(404, "not found", 'bucket "nope" not found');
      const lines = body.split("\n");
      const bad = lines.find((l) => l.includes("bad"));
      if (bad !== undefined) return answer(400, "invalid", `unable to parse '${bad}': invalid field format`);
      state.stored.push(...lines);
      res.writeHead(204).end();
    });
  }).listen(0, "127.0.0.1");
  await once(server, "listening");
  state.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return state;
}

describe("InfluxDB 2.x line writer (against a stand-in)", () => {
  it("writes again the good lines of a batch 2.x refused whole for one it could not parse", async () => {
    const standIn = await startV2StandIn();
    try {
      const writer = createLineWriter({ api: "v2", url: standIn.url, bucket: "fan", org: "acme", token: "t" });
      const outcome = await writer.write(["m f=1 1", "m bad 2", "m f=3 3"]);
      assert.deepEqual(outcome, {
        rejected: [{ index: 1, error: "InfluxDB cannot parse the point: invalid field format" }],
      });
      assert.deepEqual(standIn.stored, ["m f=1 1", "m f=3 3"]);
      assert.equal(standIn.requests, 2);
    } finally {
      standIn.close();
    }
  });

  it("does not create a missing bucket: the error says how", async () => {
    const standIn = await startV2StandIn();
    try {
      const writer = createLineWriter({ api: "v2", url: standIn.url, bucket: "nope", org: "acme", token: "t" });
      await assert.rejects(
        writer.write(["m f=1 1"]),
        /InfluxDB has no bucket "nope" in org "acme": create it \(influx bucket create --name nope --org acme\) or set INFLUX_BUCKET .*\(404: bucket "nope" not found\)/,
      );
    } finally {
      standIn.close();
    }
  });
});
