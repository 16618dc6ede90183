import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { parseAllDocuments, parse } from "yaml";
import { parseImageRef } from "../../cli/release/image-ref.js";
import { resolveDigest } from "../../cli/release/registry.js";
import { containerImages } from "../../cli/release/site-images.js";
import { startDockerRegistry } from "../support/docker-registry.js";
import { REPO_ROOT } from "../support/paths.js";
import { freePort, runCli } from "../support/process.js";
import { startRegistryStandIn, STAND_IN_USER, type RegistryStandIn } from "../support/registry-stand-in.js";

const run = promisify(execFile);
const TAG = "0.2.0-6f44e69c1a2b";

/**
 * `fanwatch release images|pin` on a copy of the repository's deploy/ and stack.yml, against a
 * registry STAND-IN (test/support/registry-stand-in.ts) that plays ghcr.io, docker.io and quay.io
 * through --mirror; the manifests are rendered by the real `kubectl kustomize`.
 */
describe("fanwatch release", () => {
  let root: string;
  let registry: RegistryStandIn;
  let listed: string[];
  const mirrors = () => ["ghcr.io", "docker.io", "quay.io"].flatMap((host) => ["--mirror", `${host}=${registry.url}`]);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "fanwatch-release-"));
    await cp(join(REPO_ROOT, "deploy"), join(root, "deploy"), { recursive: true });
    await cp(join(REPO_ROOT, "stack.yml"), join(root, "stack.yml"));
    // A size overlay as the real ones include the release: the base plus the pins.
    await mkdir(join(root, "deploy/k3s/site"));
    await writeFile(
      join(root, "deploy/k3s/site/kustomization.yaml"),
      "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\ncomponents:\n  - ../release\n",
    );
    const images = await runCli(["release", "images", "--root", root, "--tag", TAG]);
    assert.equal(images.code, 0, images.stderr);
    listed = images.stdout.trim().split("\n");
    // The stand-in holds every listed image; ours (ghcr.io/fanwatch/*) are private, as a company's would be.
    registry = await startRegistryStandIn(
      listed.map((line) => {
        const ref = parseImageRef(line);
        return {
          registry: ref.registry,
          repository: ref.repository,
          tag: ref.tag ?? "",
          private: ref.repository.startsWith("fanwatch/"),
        };
      }),
    );
    await writeFile(
      join(root, "auth.json"),
      JSON.stringify({
        auths: {
          "ghcr.io": { auth: Buffer.from(`${STAND_IN_USER.username}:${STAND_IN_USER.password}`).toString("base64") },
        },
      }),
    );
  });
  after(async () => {
    await registry?.close();
    await rm(root, { recursive: true, force: true });
  });

  it("lists every image the site pulls: the manifests', the functions' at the release tag, and OpenFaaS CE 15.0.6's", () => {
    for (const image of [
      `ghcr.io/fanwatch/fanwatch:${TAG}`,
      `ghcr.io/fanwatch/score:${TAG}`,
      `ghcr.io/fanwatch/predict:${TAG}`,
      `ghcr.io/fanwatch/health:${TAG}`,
      "docker.io/library/influxdb:1.8.10-alpine",
      "docker.io/library/nats:2.10.22-alpine",
      "quay.io/prometheus/alertmanager:v0.25.0",
      "ghcr.io/openfaas/gateway:0.27.13",
      "ghcr.io/openfaas/faas-netes:0.18.17",
      "ghcr.io/openfaas/queue-worker:0.14.2",
      "docker.io/library/nats-streaming:0.25.6",
      "docker.io/prom/prometheus:v3.11.3",
      "docker.io/prom/alertmanager:v0.32.1",
    ])
      assert.ok(listed.includes(image), `${image} in:\n${listed.join("\n")}`);
    assert.equal(new Set(listed).size, listed.length, "each image once");
    assert.ok(
      !listed.some((line) => line.endsWith(":0.1.0")),
      "our images at the release tag, not the manifests' 0.1.0",
    );
  });

  it("mirrors every registry the site's images come from in the example registries.yaml, each under its own prefix", async () => {
    const example = parse(await readFile(join(REPO_ROOT, "deploy/k3s/registries.yaml"), "utf8")) as {
      mirrors: Record<string, { endpoint?: string[]; rewrite?: Record<string, string> } | null>;
    };
    for (const host of new Set(listed.map((line) => parseImageRef(line).registry))) {
      const mirror = example.mirrors[host];
      assert.ok(mirror?.endpoint?.[0]?.startsWith("https://"), `${host}: a mirror endpoint over TLS`);
      assert.deepEqual(Object.values(mirror?.rewrite ?? {}), [`${host}/$1`], `${host}: kept apart under ${host}/`);
    }
  });

  it("tags a release with the package version and the commit, and refuses a tree with uncommitted changes", async () => {
    const repo = join(root, "repo");
    await mkdir(repo);
    await writeFile(join(repo, "package.json"), JSON.stringify({ name: "fanwatch", version: "0.2.0" }));
    const git = (...args: string[]) =>
      run("git", ["-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.org", ...args]);
    await git("init", "-q");
    await git("add", "package.json");
    await git("commit", "-q", "-m", "release");
    const commit = (await git("rev-parse", "--short=12", "HEAD")).stdout.trim();
    const tagged = await runCli(["release", "tag", "--root", repo]);
    assert.equal(tagged.code, 0, tagged.stderr);
    assert.equal(tagged.stdout.trim(), `0.2.0-${commit}`);
    await writeFile(join(repo, "package.json"), JSON.stringify({ name: "fanwatch", version: "0.2.1" }));
    const dirty = await runCli(["release", "tag", "--root", repo]);
    assert.equal(dirty.code, 2);
    assert.match(dirty.stderr, /uncommitted changes \(1 files\): commit them first/);
  });

  it("refuses a moving tag (stack.yml's dev, latest) as a release", async () => {
    for (const tag of ["dev", "latest"]) {
      const { code, stderr } = await runCli(["release", "images", "--root", root, "--tag", tag]);
      assert.equal(code, 2);
      assert.match(stderr, /is a moving tag, not a release.*\[FANWATCH_USAGE\]/);
    }
  });

  it("says which image a registry refuses without credentials, and writes nothing", async () => {
    const before = await readFile(join(root, "deploy/k3s/release/kustomization.yaml"), "utf8");
    const { code, stderr } = await runCli(["release", "pin", "--root", root, "--tag", TAG, ...mirrors()]);
    assert.equal(code, 1);
    assert.match(stderr, /fanwatch: .*refused a pull token for fanwatch\/fanwatch \(403\).*\[FANWATCH_HTTP_STATUS\]/);
    assert.equal(await readFile(join(root, "deploy/k3s/release/kustomization.yaml"), "utf8"), before);
  });

  it("says which tag is missing from the registry", async () => {
    const { code, stderr } = await runCli([
      "release",
      "pin",
      "--root",
      root,
      "--tag",
      "0.2.0-notpushed",
      "--credentials",
      join(root, "auth.json"),
      ...mirrors(),
    ]);
    assert.equal(code, 1);
    assert.match(
      stderr,
      /ghcr\.io\/fanwatch\/fanwatch:0\.2\.0-notpushed is not in 127\.0\.0\.1:\d+ \(mirror of ghcr\.io\) \(404\): no such tag/,
    );
  });

  it("says which registry it cannot reach", async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const everyHost = ["ghcr.io", "docker.io", "quay.io"].flatMap((host) => ["--mirror", `${host}=${closed}`]);
    const { code, stderr } = await runCli(["release", "pin", "--root", root, "--tag", TAG, ...everyHost]);
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`cannot reach the registry 127\\.0\\.0\\.1:\\d+ at ${closed}: .*ECONNREFUSED`));
  });

  it("pins every image by digest: the overlay with the release component renders only @sha256: images, each the registry's", async () => {
    const pinArgs = [
      "release",
      "pin",
      "--root",
      root,
      "--tag",
      TAG,
      "--credentials",
      join(root, "auth.json"),
      ...mirrors(),
    ];
    const { code, stdout, stderr } = await runCli(pinArgs);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /wrote deploy\/k3s\/release\/kustomization\.yaml/);
    assert.match(stderr, new RegExp(`resolving ${listed.length}/${listed.length} `), "a progress line per image");
    assert.ok(
      registry.requests.every((r) => r.accept.startsWith("application/vnd.oci.image.index.v1+json")),
      "asks for the multi-platform index first",
    );

    for (const dir of ["deploy/k3s/site", "deploy/k3s/simulator"]) {
      const { stdout: rendered } = await run("kubectl", ["kustomize", join(root, dir)], { maxBuffer: 1 << 26 });
      const images = parseAllDocuments(rendered).flatMap((doc) => containerImages(doc.toJS()));
      assert.ok(images.length > 0, `${dir}: renders images`);
      for (const image of images) {
        const ref = parseImageRef(image);
        assert.ok(ref.digest !== undefined, `${dir}: ${image} by digest`);
        assert.equal(
          ref.digest,
          registry.digestOf(ref.registry, ref.repository, ref.tag ?? ""),
          `${image}: the registry's`,
        );
      }
      assert.ok(
        images.includes(`ghcr.io/fanwatch/fanwatch:${TAG}@${registry.digestOf("ghcr.io", "fanwatch/fanwatch", TAG)}`),
      );
    }

    const stack = parse(await readFile(join(root, "stack.pinned.yml"), "utf8")) as {
      functions: Record<string, { image: string; handler: string }>;
    };
    for (const fn of ["score", "predict", "health"]) {
      const digest = registry.digestOf("ghcr.io", `fanwatch/${fn}`, TAG);
      assert.equal(stack.functions[fn]?.image, `ghcr.io/fanwatch/${fn}@${digest}`);
      assert.equal(stack.functions[fn]?.handler, `./functions/${fn}`, "the rest of stack.yml as it was");
    }

    // Again, with the overlays now rendering these pins: the tags are resolved afresh, to the same digests.
    const component = await readFile(join(root, "deploy/k3s/release/kustomization.yaml"), "utf8");
    const again = await runCli(pinArgs);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await readFile(join(root, "deploy/k3s/release/kustomization.yaml"), "utf8"), component);

    const list = (await readFile(join(root, "deploy/k3s/release/images.txt"), "utf8"))
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"));
    assert.equal(list.length, listed.length);
    for (const line of list) assert.match(line, /^\S+:[\w.-]+@sha256:[0-9a-f]{64} {2}# \S/);
  });
});

/**
 * The resolver against a real Distribution registry (Debian's docker-registry, what a site runs),
 * filled by skopeo as docs/offline.md fills a site registry: under each upstream's prefix, digests
 * preserved. This is the check `release pin --mirror` makes of a site mirror.
 */
describe("fanwatch release against a real registry", () => {
  it("reads the index digest skopeo pushed, through the site prefix, and says when a tag is missing", async () => {
    const registry = await startDockerRegistry();
    try {
      const pushed = await registry.push("ghcr.io/fanwatch/score", "0.2.0-abc");
      const mirrors = new Map([["ghcr.io", `${registry.url}/ghcr.io`]]);
      assert.equal(await resolveDigest(parseImageRef("ghcr.io/fanwatch/score:0.2.0-abc"), { mirrors }), pushed);
      assert.equal(
        await resolveDigest(parseImageRef(`ghcr.io/fanwatch/score@${pushed}`), { mirrors }),
        pushed,
        "a pinned reference is served by digest",
      );
      await assert.rejects(resolveDigest(parseImageRef("ghcr.io/fanwatch/score:0.3.0"), { mirrors }), {
        reason: "not-found",
        message: /ghcr\.io\/fanwatch\/score:0\.3\.0 is not in/,
      });
    } finally {
      await registry.stop();
    }
  });
});
