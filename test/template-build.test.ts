import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildDockerfile, parseDockerfile, type BuildResult } from "./support/dockerfile.js";
import { shrinkwrap } from "./support/faas-cli.js";
import { REPO_ROOT } from "./support/paths.js";
import { freePort, postJson, waitForOutput } from "./support/process.js";

// What `faas-cli build` would do for the score function, without a container engine: the build
// context as faas-cli writes it, the Dockerfile's stages run by test/support/dockerfile.ts, and the
// shipped image's process started as of-watchdog starts it. Stand-ins, named: the host's Node.js
// and npm for node:22-alpine; of-watchdog itself is not run (its image is not available here), so
// the function is called on its upstream port directly.
interface Image {
  workspace: string;
  context: string;
  build: BuildResult;
  steps: string[];
  child: ChildProcessWithoutNullStreams;
  url: string;
  filesBefore: string[];
}

/** Builds one function's image as faas-cli would and starts its process as of-watchdog would. */
async function buildAndStart(fn: string, env: Record<string, string> = {}): Promise<Image> {
  const workspace = await mkdtemp(join(tmpdir(), "fanwatch-image-"));
  const context = await shrinkwrap(REPO_ROOT, "stack.yml", fn, join(workspace, "build"));
  const dockerfile = parseDockerfile(await readFile(join(context, "Dockerfile"), "utf8"));
  process.env.npm_config_prefer_offline = "true"; // use the npm cache the repository's install filled
  const steps: string[] = [];
  const build = await buildDockerfile(dockerfile, context, join(workspace, "rootfs"), (line) => steps.push(line));
  const appDir = join(build.final.root, build.final.workdir);
  const filesBefore = await listFiles(appDir);
  const port = await freePort();
  const fprocess = build.final.env.fprocess ?? "";
  const child = spawn("sh", ["-c", `exec ${fprocess}`], { cwd: appDir, env: { PATH: process.env.PATH, HOME: tmpdir(), ...build.final.env, ...env, http_port: String(port) } });
  await waitForOutput(child, /"event":"listening"/);
  return { workspace, context, build, steps, child, url: `http://127.0.0.1:${port}/`, filesBefore };
}

async function remove(image: Image | undefined): Promise<void> {
  if (image === undefined) return;
  if (image.child.exitCode === null) image.child.kill("SIGKILL");
  await rm(image.workspace, { recursive: true, force: true });
}

describe("node22-ts image build of the score function", { timeout: 600_000 }, () => {
  let image: Image;
  let build: BuildResult;
  let context: string;
  let child: ChildProcessWithoutNullStreams;
  let url: string;
  let filesBefore: string[];
  let steps: string[];

  before(async () => {
    image = await buildAndStart("score");
    ({ build, context, child, url, filesBefore, steps } = image);
  });
  after(() => remove(image));

  it("lays out the context as faas-cli does", async () => {
    const fn = await readdir(join(context, "function"));
    for (const entry of ["handler.ts", "package.json", "handler.test.ts", "lib", "model"]) assert.ok(fn.includes(entry), entry);
    assert.ok((await stat(join(context, "function", "model", "artifact", "model.json"))).isFile());
    assert.ok((await stat(join(context, "template.yml"))).isFile());
  });

  it("bundles the handler, runs its tests in the build stage and ships only what runs", async () => {
    assert.ok(steps.some((s) => s.includes("RUN node build.mjs")));
    assert.ok(steps.some((s) => /# pass [1-9]\d*/.test(s) && /# fail 0/.test(s)), "the function's tests ran and passed during the build");
    const shipped = await listFiles(join(build.final.root, build.final.workdir));
    assert.ok(shipped.includes("index.mjs"));
    assert.ok(shipped.includes("model/artifact/weights.bin"));
    assert.ok(!shipped.some((f) => f.endsWith(".ts") && !f.startsWith("node_modules/")), "no TypeScript sources of ours in the image");
    assert.ok(!shipped.some((f) => f.startsWith("node_modules/fastify/")), "bundled packages are not installed again");
    assert.ok(shipped.some((f) => f.startsWith("node_modules/@tensorflow/tfjs-backend-wasm/")));
  });

  it("ships a non-root, watchdog-driven image as the official template does", () => {
    const ship = build.final;
    assert.equal(ship.image, "node:22-alpine");
    assert.match(ship.user ?? "", /^[1-9]\d*:[1-9]\d*$/, "a numeric non-root user, so runAsNonRoot can be verified");
    assert.equal(ship.env.mode, "http");
    assert.equal(ship.env.upstream_url, "http://127.0.0.1:3000");
    assert.equal(ship.cmd, '["fwatchdog"]');
    assert.match(ship.healthcheck ?? "", /\/tmp\/\.lock/);
    assert.deepEqual(build.skipped, ["COPY --from=watchdog /fwatchdog /usr/bin/fwatchdog (image ghcr.io/openfaas/of-watchdog:0.12.4 is not available here)"]);
  });

  it("serves the score contract from the built image", async () => {
    const single = await postJson(url, { params: [420, 53, 240, 58] });
    assert.equal(single.status, 200);
    assert.match(single.type, /^application\/json/);
    assert.equal((single.body as { fault: number }).fault, 1);
    const batch = await postJson(url, { instances: [[620, 40, 150, 48]] });
    const answer = batch.body as { model: string; predictions: Array<{ fault: number; probability: number }> };
    assert.match(answer.model, /^fan-dense-/);
    assert.equal(answer.predictions.length, 1);
    assert.equal(answer.predictions[0]?.fault, 0);
    const bad = await postJson(url, { params: [1, 2] });
    assert.equal(bad.status, 400);
    const meta = (await (await fetch(url)).json()) as { id: string; backend: string };
    assert.match(meta.id, /^fan-dense-/);
  });

  it("writes nothing into its own files (works on a read-only root filesystem) and exits 0 on SIGTERM", async () => {
    assert.deepEqual(await listFiles(join(build.final.root, build.final.workdir)), filesBefore);
    child.kill("SIGTERM");
    const [code] = (await once(child, "exit")) as [number];
    assert.equal(code, 0);
  });
});

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

describe("node22-ts image build of the predict function", { timeout: 600_000 }, () => {
  let image: Image;
  before(async () => {
    // No broker or score function here: the image must still start, answer and stop cleanly.
    image = await buildAndStart("predict", { MQTT_URL: `mqtt://127.0.0.1:${await freePort()}`, SCORE_URL: "http://127.0.0.1:9/" });
  });
  after(() => remove(image));

  it("bundles MQTT.js and undici and serves its description", async () => {
    const shipped = await listFiles(join(image.build.final.root, image.build.final.workdir));
    assert.ok(shipped.includes("index.mjs"));
    assert.ok(!shipped.some((f) => f.startsWith("node_modules/mqtt/") || f.startsWith("node_modules/undici/")), "bundled, not installed again");
    const description = (await (await fetch(image.url)).json()) as { broker: string; topics: { anomaly: string } };
    assert.equal(description.broker, "disconnected");
    assert.equal(description.topics.anomaly, "fan/anomaly");
  });

  it("answers 503, not 200, when it cannot score", async () => {
    const answer = await postJson(image.url, { deviceID: "1", rotation: 600, temperature: 40, vibration: 150, sound: 48 });
    assert.equal(answer.status, 503);
    image.child.kill("SIGTERM");
    const [code] = (await once(image.child, "exit")) as [number];
    assert.equal(code, 0);
  });
});
