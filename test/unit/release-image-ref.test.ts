import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatImageRef, parseImageRef, qualifiedImageRef } from "../../cli/release/image-ref.js";
import { challengeParams } from "../../cli/release/registry.js";

const DIGEST = `sha256:${"ab".repeat(32)}`;

describe("image references as containerd reads them", () => {
  it("puts a name without a registry on Docker Hub, a one-part name under library/", () => {
    assert.deepEqual(parseImageRef("influxdb:1.8.10-alpine"), {
      name: "influxdb",
      registry: "docker.io",
      repository: "library/influxdb",
      tag: "1.8.10-alpine",
      digest: undefined,
    });
    assert.equal(parseImageRef("grafana/grafana:11.6.3").repository, "grafana/grafana");
    assert.equal(qualifiedImageRef(parseImageRef("nats:2.10.22-alpine")), "docker.io/library/nats:2.10.22-alpine");
  });

  it("reads Docker Hub named as docker.io or index.docker.io as the same Hub, library/ included", () => {
    for (const text of ["docker.io/influxdb:1.8", "index.docker.io/influxdb:1.8", "docker.io/library/influxdb:1.8"]) {
      const ref = parseImageRef(text);
      assert.equal(ref.registry, "docker.io", text);
      assert.equal(ref.repository, "library/influxdb", text);
      assert.equal(qualifiedImageRef(ref), "docker.io/library/influxdb:1.8", text);
    }
    assert.equal(parseImageRef("docker.io/grafana/grafana:11.6.3").repository, "grafana/grafana");
  });

  it("reads a registry's port apart from a tag, and a tag beside a digest", () => {
    const ref = parseImageRef(`registry.site.lan:5000/fanwatch/score:0.2.0-abc@${DIGEST}`);
    assert.equal(ref.registry, "registry.site.lan:5000");
    assert.equal(ref.repository, "fanwatch/score");
    assert.equal(ref.tag, "0.2.0-abc");
    assert.equal(ref.digest, DIGEST);
    assert.equal(parseImageRef("localhost:5000/x").tag, undefined);
    assert.equal(formatImageRef(ref), `registry.site.lan:5000/fanwatch/score:0.2.0-abc@${DIGEST}`);
  });

  it("refuses what is not a reference, naming it", () => {
    assert.throws(() => parseImageRef("ghcr.io/fanwatch/score:"), /"ghcr.io\/fanwatch\/score:" .*tag/);
    assert.throws(() => parseImageRef("score@sha256:short"), /sha256:<64 hex digits>/);
    assert.throws(() => parseImageRef("ghcr.io/Fanwatch/score:1"), /repository name/);
  });

  it("reads a Bearer challenge's parameters", () => {
    const params = challengeParams(
      'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"',
    );
    assert.equal(params.get("realm"), "https://ghcr.io/token");
    assert.equal(params.get("service"), "ghcr.io");
  });
});
