import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseStack, substituteEnv } from "../lib/stack.js";
import { REPO_ROOT } from "./support/paths.js";

const text = readFileSync(join(REPO_ROOT, "stack.yml"), "utf8");
// Community Edition rejects these at deploy time (openfaas-contract.md).
const PRO_LABELS = ["com.openfaas.scale.zero", "com.openfaas.scale.zero-duration", "com.openfaas.scale.target", "com.openfaas.scale.type"];

describe("stack.yml", () => {
  const stack = parseStack(text, {});

  it("substitutes ${VAR:-default} like faas-cli", () => {
    assert.equal(substituteEnv("${A:-x}/${B}", { B: "y" }), "x/y");
    assert.equal(parseStack(text, { REGISTRY: "registry.local:5000/fan", TAG: "1.2.3" }).functions.score?.image, "registry.local:5000/fan/score:1.2.3");
    assert.equal(stack.functions.score?.image, "ghcr.io/fanwatch/score:0.1.0");
  });

  it("references templates, handlers and copy paths that exist", () => {
    for (const [name, fn] of Object.entries(stack.functions)) {
      for (const file of ["template.yml", "Dockerfile"]) assert.ok(existsSync(join(REPO_ROOT, "template", fn.lang, file)), `${name}: template/${fn.lang}/${file}`);
      for (const file of ["handler.ts", "package.json"]) assert.ok(existsSync(join(REPO_ROOT, fn.handler, file)), `${name}: ${fn.handler}/${file}`);
    }
    for (const path of stack.configuration.copy) assert.ok(existsSync(join(REPO_ROOT, path)), path);
  });

  it("uses Community Edition scaling labels only, within its limits", () => {
    for (const [name, fn] of Object.entries(stack.functions)) {
      for (const label of PRO_LABELS) assert.ok(!(label in fn.labels), `${name} sets ${label}`);
      const min = Number(fn.labels["com.openfaas.scale.min"] ?? 1);
      const max = Number(fn.labels["com.openfaas.scale.max"] ?? 5);
      assert.ok(min >= 1 && min <= max && max <= 5, `${name}: scale ${min}..${max}`);
    }
  });

  it("triggers predict from the telemetry topic", () => {
    assert.equal(stack.functions.predict?.annotations.topic, "fan/messages");
  });

  it("runs every function on a read-only root filesystem with limits", () => {
    for (const [name, fn] of Object.entries(stack.functions)) {
      assert.equal(fn.readonly_root_filesystem, true, name);
      assert.ok(fn.limits?.memory !== undefined && fn.requests?.memory !== undefined, `${name} memory limit and request`);
    }
  });
});
