import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { get, request, type IncomingMessage } from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { readStack } from "../../runtime/gateway/stack.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { REPO_ROOT } from "../support/paths.js";
import { finished, freePort, spawnCli, waitForOutput, type Finished } from "../support/process.js";

/**
 * The gateway API that faas-cli 0.16.11 and the official mqtt-connector (connector-sdk 0.6.7)
 * call, answered by `fanwatch gateway` as the OpenFaaS gateway (with faas-netes) answers it:
 * faas-provider's shapes, faas-netes' namespace rules (docs/start.md lists the calls).
 */

const SCORE_BODY = JSON.stringify({ params: [612.3, 40.1, 151.7, 48.9] });
const MQTT_PASSWORD = "s3cret-pw-42";
const URL_PASSWORD = "url-pw-77";
const LIMIT = 1024 * 1024; // the template's default MAX_JSON_SIZE / MAX_RAW_SIZE; stack.yml sets score's to 1mb

interface Answer {
  status: number;
  type: string;
  body: string;
}

/** One request with exactly these headers; a chunked body when `chunks` is given, else Content-Length. */
function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer | string; chunks?: Buffer[] } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    const headers = { ...options.headers, ...(body === undefined ? {} : { "content-length": String(body.length) }) };
    const req = request(url, { method: options.method ?? "GET", headers }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, type: res.headers["content-type"] ?? "", body: text }),
      );
    });
    req.on("error", reject);
    if (options.chunks !== undefined) {
      for (const chunk of options.chunks) req.write(chunk);
      req.end();
    } else req.end(body);
  });
}

/** A body of `size` bytes that is valid JSON for score: its reading, then spaces. */
function paddedScoreBody(size: number): Buffer {
  const body = Buffer.alloc(size, " ");
  body.write(SCORE_BODY);
  return body;
}

function inChunks(body: Buffer, size = 64 * 1024): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) chunks.push(body.subarray(i, i + size));
  return chunks;
}

interface LogMessage {
  name: string;
  namespace: string;
  instance: string;
  timestamp: string;
  text: string;
}

interface FunctionStatus {
  name: string;
  namespace: string;
  envProcess?: string;
  envVars: Record<string, string>;
  annotations: Record<string, string>;
  createdAt: string;
  replicas: number;
  availableReplicas: number;
}

describe(
  "the OpenFaaS API of fanwatch gateway, as faas-cli and the connector-sdk call it",
  { timeout: 180_000 },
  () => {
    let broker: Broker;
    let child: ChildProcessWithoutNullStreams;
    let exit: Promise<Finished>;
    let gateway: string;
    let auth: Record<string, string>;
    let output = "";
    const spawnedAt = new Date();
    /** A followed log stream, left open for the last test (the gateway must end it when it stops). */
    let followed: IncomingMessage | undefined;

    const api = async (path: string, headers = auth): Promise<Answer> => send(`${gateway}${path}`, { headers });
    const logs = async (query: string): Promise<LogMessage[]> => {
      const answer = await api(`/system/logs?${query}`);
      assert.equal(answer.status, 200, answer.body);
      assert.equal(answer.type, "application/x-ndjson");
      return answer.body
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as LogMessage);
    };

    before(async () => {
      broker = await startMosquitto();
      const port = await freePort();
      gateway = `http://127.0.0.1:${port}`;
      const brokerUrl = new URL(broker.url);
      brokerUrl.username = "fanwatch";
      brokerUrl.password = URL_PASSWORD;
      // LOG_LEVEL info: the functions print lines for the log API to keep.
      child = spawnCli(["gateway", "--port", String(port)], {
        MQTT_URL: brokerUrl.toString(),
        MQTT_PASSWORD,
        LOG_LEVEL: "info",
        GATEWAY_PASSWORD: "test-gateway-pw",
      });
      child.stderr.on("data", (d: Buffer) => (output += d.toString()));
      child.stdout.on("data", (d: Buffer) => (output += d.toString()));
      exit = finished(child);
      await waitForOutput(child, /gateway running on/, 60_000);
      auth = { authorization: `Basic ${Buffer.from("admin:test-gateway-pw").toString("base64")}` };
    });
    after(async () => {
      followed?.destroy();
      if (child?.exitCode === null) child.kill("SIGKILL");
      await broker?.stop();
    });

    it("needs basic auth for namespaces, info, logs and secrets, as for the rest of /system", async () => {
      for (const path of ["/system/namespaces", "/system/info", "/system/logs?name=score", "/system/secrets"]) {
        assert.equal((await api(path, {})).status, 401, path);
      }
    });

    it("lists its one namespace, openfaas-fn (GET /system/namespaces)", async () => {
      const answer = await api("/system/namespaces");
      assert.equal(answer.status, 200);
      assert.match(answer.type, /^application\/json/);
      assert.deepEqual(JSON.parse(answer.body), ["openfaas-fn"]);
    });

    it("says what it is (GET /system/info): fanwatch's local gateway, the package version, the architecture as Go names it", async () => {
      const answer = await api("/system/info");
      assert.equal(answer.status, 200);
      const info = JSON.parse(answer.body) as {
        provider: { provider: string; orchestration: string; version: { release: string; sha: string } };
        version: { release: string; sha: string };
        arch: string;
      };
      const { version } = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
      assert.match(info.provider.provider, /fanwatch/);
      assert.equal(info.provider.version.release, version);
      assert.equal(info.version.release, version);
      // faas-cli version dereferences both version objects: each must be there, sha included.
      assert.equal(typeof info.provider.version.sha, "string");
      assert.equal(typeof info.version.sha, "string");
      assert.equal(typeof info.provider.orchestration, "string");
      assert.equal(info.arch, process.arch === "x64" ? "amd64" : process.arch);
    });

    it("filters functions by namespace as faas-netes does: none or openfaas-fn listed, another refused with 400", async () => {
      const all = await api("/system/functions");
      const namespaced = await api("/system/functions?namespace=openfaas-fn");
      assert.equal(namespaced.status, 200);
      const names = (answer: Answer) =>
        (JSON.parse(answer.body) as FunctionStatus[]).map((f) => `${f.name}.${f.namespace}`).sort();
      assert.deepEqual(names(namespaced), names(all));
      assert.deepEqual(names(all), ["health.openfaas-fn", "predict.openfaas-fn", "score.openfaas-fn"]);
      for (const path of ["/system/functions?namespace=other", "/system/function/score?namespace=other"]) {
        const refused = await api(path);
        assert.equal(refused.status, 400, path);
        assert.match(refused.body, /namespace must be: openfaas-fn/);
      }
      assert.equal(
        (await api("/system/function/score?namespace=openfaas-fn&usage=1")).status,
        200,
        "faas-cli describe -n openfaas-fn",
      );
      assert.equal((await api("/system/function/nope")).status, 404);
    });

    it("describes a function as the process runs it: the template's fprocess, when it started, its own variables without secrets", async () => {
      const score = JSON.parse((await api("/system/function/score")).body) as FunctionStatus;
      const { fprocess } = parse(readFileSync(join(REPO_ROOT, "templates/node22-ts/template.yml"), "utf8")) as {
        fprocess: string;
      };
      assert.equal(score.envProcess, fprocess);
      // createdAt in Go's time format (RFC 3339), between this test's start of the gateway and now.
      assert.match(score.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      assert.ok(
        Date.parse(score.createdAt) >= spawnedAt.getTime() && Date.parse(score.createdAt) <= Date.now(),
        score.createdAt,
      );
      // What the process uses: the local addresses the runner set, not stack.yml's cluster ones, and not the inherited environment.
      assert.equal(score.envVars.SCORE_URL, `${gateway}/function/score`);
      assert.equal(score.envVars.SCORE_MAX_BATCH, "256");
      assert.equal(score.envVars.LOG_LEVEL, "info");
      assert.equal(score.envVars.PATH, undefined);
      assert.equal(score.envVars.GATEWAY_PASSWORD, undefined);
      assert.equal(score.envVars.MQTT_URL, `mqtt://fanwatch:***@127.0.0.1:${broker.port}`);
      const everything = (await api("/system/functions")).body;
      assert.doesNotMatch(
        everything,
        new RegExp(`${MQTT_PASSWORD}|${URL_PASSWORD}|test-gateway-pw`),
        "no password in /system/functions",
      );
      assert.doesNotMatch(everything, /"MQTT_PASSWORD"/);
      const health = JSON.parse((await api("/system/function/health")).body) as FunctionStatus;
      assert.equal(
        health.envVars.MQTT_PASSWORD_FILE,
        "/var/openfaas/secrets/mqtt-health-password",
        "a path to a secret may be shown",
      );
    });

    it("lists the secrets stack.yml gives the functions, by name only, and refuses to change them with 501", async () => {
      const stack = await readStack(join(REPO_ROOT, "stack.yml"));
      const expected = [...new Set(Object.values(stack.functions).flatMap((f) => f.secrets))].sort();
      assert.ok(expected.length > 0);
      const answer = await api("/system/secrets");
      assert.equal(answer.status, 200);
      assert.deepEqual(
        JSON.parse(answer.body),
        expected.map((name) => ({ name, namespace: "openfaas-fn" })),
      );
      assert.equal((await api("/system/secrets?namespace=openfaas-fn")).body, answer.body);
      assert.equal((await api("/system/secrets?namespace=other")).status, 400);
      const write = await send(`${gateway}/system/secrets`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ name: "x", value: "y" }),
      });
      assert.equal(write.status, 501);
      assert.match(write.body, /cannot deploy or change/);
    });

    it("routes <name>.openfaas-fn as <name>, sync and async, and answers another namespace 404 as OpenFaaS does", async () => {
      const plain = await send(`${gateway}/function/score`, { method: "POST", body: SCORE_BODY });
      const namespaced = await send(`${gateway}/function/score.openfaas-fn`, { method: "POST", body: SCORE_BODY });
      assert.equal(namespaced.status, 200, namespaced.body);
      assert.equal(namespaced.body, plain.body);
      assert.equal(
        (await send(`${gateway}/async-function/score.openfaas-fn`, { method: "POST", body: SCORE_BODY })).status,
        202,
      );
      for (const path of ["/function/score.other", "/async-function/score.other"]) {
        const elsewhere = await send(`${gateway}${path}`, { method: "POST", body: SCORE_BODY });
        assert.equal(elsewhere.status, 404, path);
        assert.match(elsewhere.body, /error finding function score\.other: namespace must be: openfaas-fn/);
      }
    });

    it("serves the connector-sdk's discovery: namespaces, the functions of each, the topic annotation, then <name>.<namespace>", async () => {
      const found: string[] = [];
      for (const namespace of JSON.parse((await api("/system/namespaces")).body) as string[]) {
        const functions = JSON.parse((await api(`/system/functions?namespace=${namespace}`)).body) as FunctionStatus[];
        for (const f of functions)
          if (f.annotations.topic?.split(",").includes("fan/messages") === true) found.push(`${f.name}.${namespace}`);
      }
      assert.deepEqual(found, ["predict.openfaas-fn"]);
      const reading = JSON.stringify({
        deviceID: "7",
        timeStamp: "2026-11-27 10:00:00",
        rotation: 612.3,
        temperature: 40.1,
        vibration: 151.7,
        sound: 48.9,
      });
      const answer = await send(`${gateway}/function/${found[0]}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-connector": "connector-sdk", "x-topic": "fan/messages" },
        body: reading,
      });
      assert.equal(answer.status, 200, answer.body);
      assert.match(answer.body, /"deviceID":"7"/);
    });

    it("answers the log API with what the function processes printed: tail, since, instance, and errors for bad queries", async () => {
      const all = await logs("name=score&follow=false");
      assert.ok(
        all.some((m) => /score listening on port/.test(m.text)),
        JSON.stringify(all),
      );
      for (const m of all) {
        assert.deepEqual(Object.keys(m).sort(), ["instance", "name", "namespace", "text", "timestamp"]);
        assert.equal(m.name, "score");
        assert.equal(m.namespace, "openfaas-fn");
        assert.match(m.instance, /^score-\d+$/);
        assert.match(m.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      }
      // faas-cli's default query (tail=-1: all) and its --lines.
      assert.deepEqual(await logs("name=score&follow=false&tail=-1"), all);
      assert.deepEqual(await logs("name=score&follow=false&tail=1"), all.slice(-1));
      assert.deepEqual(await logs(`name=score&follow=false&instance=${all[0]?.instance}`), all);
      assert.deepEqual(await logs("name=score&follow=false&instance=score-0"), []);
      assert.deepEqual(await logs("name=score&follow=false&since=2999-01-01T00:00:00Z"), []);
      const last = all.at(-1) as LogMessage;
      assert.ok(
        (await logs(`name=score&follow=false&since=${encodeURIComponent(last.timestamp)}`)).some(
          (m) => m.text === last.text,
        ),
      );
      assert.deepEqual(await logs("name=score&follow=false&namespace=openfaas-fn"), all);
      for (const [query, status, reason] of [
        ["follow=false", 400, /name/],
        ["name=nope", 404, /no function named nope/],
        ["name=score&namespace=other", 400, /namespace must be: openfaas-fn/],
        ["name=score&tail=many", 400, /tail/],
        ["name=score&since=yesterday", 400, /since/],
        ["name=score&follow=maybe", 400, /follow/],
      ] as const) {
        const answer = await api(`/system/logs?${query}`);
        assert.equal(answer.status, status, query);
        assert.match(answer.body, reason, query);
      }
    });

    it("follows a function's log (follow=true) across a restart, the new process under a new instance", async () => {
      const before = JSON.parse((await api("/system/function/score")).body) as FunctionStatus;
      const response = await new Promise<IncomingMessage>((resolve, reject) =>
        get(`${gateway}/system/logs?name=score&follow=true&tail=1`, { headers: auth }, resolve).on("error", reject),
      );
      followed = response;
      assert.equal(response.statusCode, 200);
      assert.equal(response.headers["content-type"], "application/x-ndjson");
      const lines = createInterface({ input: response });
      const received: LogMessage[] = [];
      const arrived = (test: (m: LogMessage) => boolean) =>
        new Promise<LogMessage>((resolve) => {
          const found = received.find(test);
          if (found !== undefined) return resolve(found);
          const onLine = (line: string) => {
            const m = JSON.parse(line) as LogMessage;
            if (test(m)) {
              lines.off("line", onLine);
              resolve(m);
            }
          };
          lines.on("line", onLine);
        });
      lines.on("line", (line) => received.push(JSON.parse(line) as LogMessage));
      const first = await arrived(() => true);
      const scale = (replicas: number) =>
        send(`${gateway}/system/scale-function/score`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ serviceName: "score", replicas }),
        });
      assert.equal((await scale(0)).status, 202);
      await arrived((m) => m.instance === first.instance && /score stopped/.test(m.text));
      assert.equal((await scale(1)).status, 202);
      const restarted = await arrived((m) => /score listening on port/.test(m.text) && m.instance !== first.instance);
      assert.match(restarted.instance, /^score-\d+$/);
      const after = JSON.parse((await api("/system/function/score")).body) as FunctionStatus;
      assert.ok(
        Date.parse(after.createdAt) > Date.parse(before.createdAt),
        `createdAt ${before.createdAt} → ${after.createdAt}: the new process's start`,
      );
    });

    it("refuses a body over the function's limit with 413 and the limit, by Content-Length and streamed, every time", async () => {
      const big = paddedScoreBody(1_100_000);
      for (const [fn, type] of [
        ["score", "application/json"],
        ["predict", "text/plain"],
      ] as const) {
        const byLength: number[] = [];
        const streamed: number[] = [];
        for (let i = 0; i < 5; i++) {
          const length = await send(`${gateway}/function/${fn}`, {
            method: "POST",
            headers: { "content-type": type },
            body: big,
          });
          assert.match(length.body, new RegExp(`the limit of ${fn} is ${LIMIT} bytes`));
          byLength.push(length.status);
          const chunked = await send(`${gateway}/function/${fn}`, {
            method: "POST",
            headers: { "content-type": type },
            chunks: inChunks(big),
          });
          assert.match(chunked.body, new RegExp(`the limit of ${fn} is ${LIMIT} bytes`));
          streamed.push(chunked.status);
        }
        assert.deepEqual(byLength, [413, 413, 413, 413, 413], `${fn} by Content-Length`);
        assert.deepEqual(streamed, [413, 413, 413, 413, 413], `${fn} streamed`);
      }
      // A body of exactly the limit is the function's to answer, either way.
      const atLimit = paddedScoreBody(LIMIT);
      assert.equal(
        (
          await send(`${gateway}/function/score`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: atLimit,
          })
        ).status,
        200,
      );
      assert.equal(
        (
          await send(`${gateway}/function/score`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            chunks: inChunks(atLimit),
          })
        ).status,
        200,
      );
    });

    it("ends a followed log stream when it stops (SIGTERM), and exits 0", async () => {
      const stream = followed;
      assert.ok(stream !== undefined, "the follow test left its stream open");
      const closed = once(stream, "close");
      child.kill("SIGTERM");
      await closed;
      assert.equal(stream.complete, true, "the stream was ended by the gateway, not cut off");
      const { code } = await exit;
      assert.equal(code, 0, output);
    });
  },
);
