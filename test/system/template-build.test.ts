import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildDockerfile, parseDockerfile, type BuildResult } from "../support/dockerfile.js";
import { shrinkwrap } from "../support/faas-cli.js";
import { REPO_ROOT } from "../support/paths.js";
import { OfWatchdogStandIn } from "../support/of-watchdog-stand-in.js";
import { freePort, postJson, waitForOutput } from "../support/process.js";

// What `faas-cli build` would do for the score function, without a container engine: the build
// context as faas-cli writes it, the Dockerfile's stages run by test/support/dockerfile.ts, and the
// shipped image's process started by of-watchdog. Stand-ins, named: the host's Node.js and npm for
// node:22-alpine, and test/support/of-watchdog-stand-in.ts for of-watchdog (its image is not
// available here), run with the image's environment.
interface Image {
  workspace: string;
  context: string;
  build: BuildResult;
  steps: string[];
  watchdog: OfWatchdogStandIn;
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
  // The upstream port is 3000 in the image; here a free one, so that tests can run side by side.
  // A 1 s health-check interval rather than write_timeout's 15 s, to stop sooner (an operator's
  // setting too); test/system/watchdog-lifecycle.test.ts stops a function under load with the real one.
  // TMPDIR: where the function writes the watchdog's lock file (suppress_lock), one per test.
  const watchdogEnv = {
    PATH: process.env.PATH,
    HOME: tmpdir(),
    TMPDIR: workspace,
    ...build.final.env,
    healthcheck_interval: "1s",
    ...env,
    http_port: String(port),
    upstream_url: `http://127.0.0.1:${port}`,
    port: String(await freePort()),
  };
  const watchdog = await OfWatchdogStandIn.start(watchdogEnv, appDir);
  await waitForOutput(watchdog.child, /"event":"listening"/);
  return { workspace, context, build, steps, watchdog, child: watchdog.child, url: `${watchdog.url}/`, filesBefore };
}

async function remove(image: Image | undefined): Promise<void> {
  if (image === undefined) return;
  if (image.child.exitCode === null) image.child.kill("SIGKILL");
  image.watchdog.terminate();
  await rm(image.workspace, { recursive: true, force: true });
}

/** SIGTERM to the watchdog, as Kubernetes sends it; resolves with the function process's exit code. */
async function stop(image: Image): Promise<number | null> {
  const exit = once(image.child, "exit");
  image.watchdog.terminate();
  await image.watchdog.exited;
  return image.child.exitCode ?? ((await exit) as [number | null])[0];
}

describe("node22-ts image build of the score function", { timeout: 600_000 }, () => {
  let image: Image;
  let build: BuildResult;
  let context: string;
  let url: string;
  let filesBefore: string[];
  let steps: string[];

  before(async () => {
    image = await buildAndStart("score");
    ({ build, context, url, filesBefore, steps } = image);
  });
  after(() => remove(image));

  it("lays out the context as faas-cli does", async () => {
    const fn = await readdir(join(context, "function"));
    for (const entry of ["handler.ts", "package.json", "handler.test.ts", "lib", "model"])
      assert.ok(fn.includes(entry), entry);
    assert.ok((await stat(join(context, "function", "model", "artifact", "model.json"))).isFile());
    assert.ok((await stat(join(context, "template.yml"))).isFile());
  });

  it("bundles the handler, runs its tests in the build stage and ships only what runs", async () => {
    assert.ok(steps.some((s) => s.includes("RUN node build.mjs")));
    assert.ok(
      steps.some((s) => /# pass [1-9]\d*/.test(s) && /# fail 0/.test(s)),
      "the function's tests ran and passed during the build",
    );
    const shipped = await listFiles(join(build.final.root, build.final.workdir));
    assert.ok(shipped.includes("index.mjs"));
    assert.ok(shipped.includes("model/artifact/weights.bin"));
    assert.ok(
      !shipped.some((f) => f.endsWith(".ts") && !f.startsWith("node_modules/")),
      "no TypeScript sources of ours in the image",
    );
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
    assert.equal(ship.env.ready_path, "/_/ready", "the watchdog's readiness is the function's");
    assert.equal(ship.env.suppress_lock, "true", "the function writes the lock file the watchdog's /_/health reports");
    assert.deepEqual(build.skipped, [
      "COPY --from=watchdog /fwatchdog /usr/bin/fwatchdog (image ghcr.io/openfaas/of-watchdog:0.11.6 is not available here)",
    ]);
  });

  it("ships exactly pinned packages, from a lock written once in the build stage, and only those the bundle imports", async () => {
    const appDir = join(build.final.root, build.final.workdir);
    const pkg = JSON.parse(await readFile(join(appDir, "package.json"), "utf8")) as {
      name: string;
      dependencies: Record<string, string>;
      optionalDependencies: Record<string, string>;
    };
    assert.equal(pkg.name, "score", "the function's name, for its logs");
    const shipped = { ...pkg.dependencies, ...pkg.optionalDependencies };
    for (const [name, version] of Object.entries(shipped))
      assert.match(version, /^\d+\.\d+\.\d+$/, `${name} is pinned, not "${version}"`);
    const fnPackage = JSON.parse(await readFile(join(REPO_ROOT, "functions/score/package.json"), "utf8")) as {
      dependencies: Record<string, string>;
      optionalDependencies: Record<string, string>;
    };
    for (const name of Object.keys(shipped))
      assert.ok(
        name in fnPackage.dependencies || name in fnPackage.optionalDependencies,
        `${name} is one of the function's own packages`,
      );
    const lock = JSON.parse(await readFile(join(appDir, "package-lock.json"), "utf8")) as {
      packages: Record<string, { version?: string }>;
    };
    const fnLock = JSON.parse(await readFile(join(REPO_ROOT, "functions/score/package-lock.json"), "utf8")) as {
      packages: Record<string, { version?: string }>;
    };
    for (const [path, entry] of Object.entries(lock.packages))
      if (path !== "")
        assert.equal(entry.version, fnLock.packages[path]?.version, `${path} as the function's lock has it`);
    assert.ok(
      steps.some((s) => /npm ci --omit=dev/.test(s)),
      "the ship stage installs the lock as it is",
    );
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
    assert.equal(await stop(image), 0);
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
    image = await buildAndStart("predict", {
      MQTT_URL: `mqtt://127.0.0.1:${await freePort()}`,
      SCORE_URL: "http://127.0.0.1:9/",
    });
  });
  after(() => remove(image));

  it("bundles MQTT.js and serves its description", async () => {
    const shipped = await listFiles(join(image.build.final.root, image.build.final.workdir));
    assert.ok(shipped.includes("index.mjs"));
    assert.ok(!shipped.some((f) => f.startsWith("node_modules/mqtt/")), "bundled, not installed again");
    const description = (await (await fetch(image.url)).json()) as { broker: string; topics: { anomaly: string } };
    assert.equal(description.broker, "disconnected");
    assert.equal(description.topics.anomaly, "fan/anomaly");
  });

  it("ships no optional package the bundle only tries to require, and none unpinned", async () => {
    const appDir = join(image.build.final.root, image.build.final.workdir);
    const pkg = JSON.parse(await readFile(join(appDir, "package.json"), "utf8")) as {
      name: string;
      dependencies: Record<string, string>;
    };
    assert.equal(pkg.name, "predict");
    assert.deepEqual(
      pkg.dependencies,
      {},
      "MQTT.js is bundled; bufferutil, utf-8-validate and supports-color are optional and left out",
    );
    assert.ok(
      image.steps.some((s) => /optional packages left out .*bufferutil/.test(s)),
      "the build says what it left out",
    );
  });

  it("answers 503, not 200, when it cannot score", async () => {
    const answer = await postJson(image.url, {
      deviceID: "1",
      rotation: 600,
      temperature: 40,
      vibration: 150,
      sound: 48,
    });
    assert.equal(answer.status, 503);
    assert.equal(await stop(image), 0);
  });
});
