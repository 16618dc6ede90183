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
describe("node22-ts image build of the score function", { timeout: 600_000 }, () => {
  let build: BuildResult;
  let context: string;
  let child: ChildProcessWithoutNullStreams;
  let url: string;
  let filesBefore: string[];
  let workspace: string;
  const steps: string[] = [];

  before(async () => {
    workspace = await mkdtemp(join(tmpdir(), "fanwatch-image-"));
    context = await shrinkwrap(REPO_ROOT, "stack.yml", "score", join(workspace, "build"));
    const dockerfile = parseDockerfile(await readFile(join(context, "Dockerfile"), "utf8"));
    process.env.npm_config_prefer_offline = "true"; // use the npm cache the repository's install filled
    build = await buildDockerfile(dockerfile, context, join(workspace, "rootfs"), (line) => steps.push(line));
    const appDir = join(build.final.root, build.final.workdir);
    filesBefore = await listFiles(appDir);
    const port = await freePort();
    const fprocess = build.final.env.fprocess ?? "";
    child = spawn("sh", ["-c", `exec ${fprocess}`], { cwd: appDir, env: { PATH: process.env.PATH, HOME: tmpdir(), ...build.final.env, http_port: String(port) } });
    await waitForOutput(child, /"event":"listening"/);
    url = `http://127.0.0.1:${port}/`;
  });
  after(async () => {
    if (child !== undefined && child.exitCode === null) child.kill("SIGKILL");
    await rm(workspace, { recursive: true, force: true });
  });

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
