import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readConnectorConfig } from "../../connectors/mqtt/config.js";
import { readHealthConfig } from "../../functions/health/config.js";
import { readPredictConfig } from "../../functions/predict/config.js";
import { parseStack, substituteEnv } from "../../runtime/gateway/stack.js";
import { REPO_ROOT } from "../support/paths.js";

const text = readFileSync(join(REPO_ROOT, "stack.yml"), "utf8");
// Community Edition rejects these at deploy time (docs/deploy.md, "Scaling").
const PRO_LABELS = [
  "com.openfaas.scale.zero",
  "com.openfaas.scale.zero-duration",
  "com.openfaas.scale.target",
  "com.openfaas.scale.type",
];

describe("stack.yml", () => {
  const stack = parseStack(text, {});

  it("substitutes ${VAR:-default} like faas-cli", () => {
    assert.equal(substituteEnv("${A:-x}/${B}", { B: "y" }), "x/y");
    assert.equal(
      parseStack(text, { REGISTRY: "registry.local:5000/fan", TAG: "1.2.3" }).functions.score?.image,
      "registry.local:5000/fan/score:1.2.3",
    );
    assert.equal(stack.functions.score?.image, "ghcr.io/fanwatch/score:dev");
  });

  it("references templates, handlers and copy paths that exist", () => {
    for (const [name, fn] of Object.entries(stack.functions)) {
      for (const file of ["template.yml", "Dockerfile"])
        assert.ok(existsSync(join(REPO_ROOT, "template", fn.lang, file)), `${name}: template/${fn.lang}/${file}`);
      for (const file of ["handler.ts", "package.json"])
        assert.ok(existsSync(join(REPO_ROOT, fn.handler, file)), `${name}: ${fn.handler}/${file}`);
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

  it("triggers predict from the telemetry topic, bare and per fan, and health from the anomaly topic", () => {
    assert.equal(stack.functions.predict?.annotations.topic, "fan/messages,fan/messages/+");
    assert.equal(stack.functions.health?.annotations.topic, "fan/anomaly");
    assert.equal(
      stack.functions.health?.environment.ANOMALY_TOPIC,
      stack.functions.predict?.environment.ANOMALY_TOPIC,
      "health reads what predict writes",
    );
  });

  it("gives health its state, its topics and time limits nested like predict's", () => {
    const env = stack.functions.health?.environment ?? {};
    const health = readHealthConfig(env);
    assert.equal(health.natsUrl, "nats://nats.fanwatch:4222");
    assert.equal(health.bucket, "fan_health");
    assert.deepEqual([health.topics.alarm, health.topics.deadletter], ["fan/alarm", "fan/deadletter"]);
    const seconds = (value: string | undefined) => Number(/^(\d+)s$/.exec(value ?? "")?.[1]);
    const connectorTimeout = readConnectorConfig({}).timeoutMs;
    assert.ok(
      health.natsTimeoutMs < health.budgetMs,
      `NATS_TIMEOUT_MS ${health.natsTimeoutMs} leaves room in HEALTH_BUDGET_MS ${health.budgetMs} to publish`,
    );
    assert.ok(
      health.budgetMs < connectorTimeout,
      `HEALTH_BUDGET_MS ${health.budgetMs} ends before the connector's timeout_ms ${connectorTimeout}`,
    );
    assert.ok(
      connectorTimeout < seconds(env.exec_timeout) * 1000,
      `health's exec_timeout ${env.exec_timeout} outlasts the connector's timeout`,
    );
    assert.ok(
      health.outboxResendMs > health.budgetMs,
      "an unpublished transition is re-sent only after its writer's budget is over",
    );
    // Its own MQTT user and password: predict's may not publish fan/alarm.
    assert.equal(env.MQTT_USERNAME, "health");
    assert.ok(
      stack.functions.health?.secrets.includes(env.MQTT_PASSWORD_FILE?.split("/").at(-1) ?? "(none)"),
      "the password file is a secret of the function",
    );
  });

  it("runs every function on a read-only root filesystem with limits", () => {
    for (const [name, fn] of Object.entries(stack.functions)) {
      assert.equal(fn.readonly_root_filesystem, true, name);
      assert.ok(
        fn.limits?.memory !== undefined && fn.requests?.memory !== undefined,
        `${name} memory limit and request`,
      );
    }
  });
});

describe("stack.yml time limits", () => {
  const stack = parseStack(readFileSync(join(REPO_ROOT, "stack.yml"), "utf8"), {});
  const seconds = (value: string | undefined) => {
    const match = /^(\d+)(ms|s|m)$/.exec(value ?? "");
    assert.ok(match !== null, `not a duration: ${value}`);
    return Number(match[1]) * { ms: 0.001, s: 1, m: 60 }[match[2] as "ms" | "s" | "m"];
  };
  const predictEnv = stack.functions.predict?.environment ?? {};
  const predict = readPredictConfig(predictEnv);
  const connectorTimeout = readConnectorConfig({}).timeoutMs / 1000;

  it("let each layer give up before the one that called it", () => {
    const scoreExec = seconds(stack.functions.score?.environment.exec_timeout);
    assert.ok(
      scoreExec <= predict.scoreTimeoutMs / 1000,
      `score's exec_timeout ${scoreExec} s must not outlast predict's SCORE_TIMEOUT_MS ${predict.scoreTimeoutMs} ms`,
    );
    assert.ok(
      predict.scoreTimeoutMs < predict.budgetMs,
      `SCORE_TIMEOUT_MS ${predict.scoreTimeoutMs} must leave room in PREDICT_BUDGET_MS ${predict.budgetMs} to publish`,
    );
    assert.ok(
      predict.budgetMs / 1000 < connectorTimeout,
      `PREDICT_BUDGET_MS ${predict.budgetMs} must end before the connector's timeout_ms ${connectorTimeout} s`,
    );
    const predictExec = seconds(predictEnv.exec_timeout);
    assert.ok(
      connectorTimeout < predictExec,
      `predict's exec_timeout ${predictExec} s must outlast the connector's timeout ${connectorTimeout} s`,
    );
  });

  it("let a watchdog write its own answer after exec_timeout", () => {
    for (const [name, fn] of Object.entries(stack.functions)) {
      assert.ok(
        seconds(fn.environment.exec_timeout) < seconds(fn.environment.write_timeout),
        `${name}: write_timeout must exceed exec_timeout`,
      );
    }
  });
});
