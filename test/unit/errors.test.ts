import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import * as errors from "../../lib/errors.js";
import {
  BodyAbortedError,
  BodyTimeoutError,
  BodyTooLargeError,
  BrokerUnavailableError,
  BudgetExhaustedError,
  CasConflictError,
  ConfigError,
  ContendedError,
  DataFormatError,
  ERROR_CODES,
  errorAnswer,
  FanwatchError,
  HealthConflictError,
  HealthNotFoundError,
  HttpStatusError,
  InfluxQueryError,
  InfluxUnavailableError,
  InputError,
  ModelError,
  ModelGateError,
  ModelNotFoundError,
  ModelRefusedError,
  NoRegistryError,
  ModelPointerMovedError,
  RegistryUnavailableError,
  PacketTooLargeError,
  PortInUseError,
  PublishFailedError,
  ScaleLabelError,
  ScoreRejectedError,
  ScoreUnavailableError,
  StoreUnavailableError,
  UsageError,
} from "../../lib/errors.js";
import * as templateErrors from "../../templates/node22-ts/errors.js";
import { RequestError, ServerSettingError, TEMPLATE_ERROR_CODES } from "../../templates/node22-ts/errors.js";
import { REPO_ROOT } from "../support/paths.js";

const ALL_CODES: Record<string, { status?: number; meaning: string }> = { ...ERROR_CODES, ...TEMPLATE_ERROR_CODES };

/** The rows of docs/errors.md's tables: code → the HTTP column ("" where there is none). */
function documentedCodes(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of readFileSync(join(REPO_ROOT, "docs/errors.md"), "utf8").split("\n")) {
    const row = /^\| `([A-Z0-9_]+)` \| *(\d*) *\|/.exec(line);
    if (row?.[1] !== undefined) rows.set(row[1], row[2] ?? "");
  }
  return rows;
}

/** The project's TypeScript files, tests and build output aside. */
function sourceFiles(dir = REPO_ROOT): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith(".") || ["node_modules", "dist", "test", "out"].includes(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(path));
    else if (entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) files.push(path);
  }
  return files;
}

/** Quoted FANWATCH_* strings in the project's source: code → a file that uses it. */
function codesInSource(): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of sourceFiles()) {
    for (const match of readFileSync(file, "utf8").matchAll(/["'`](FANWATCH_[A-Z0-9_]+)["'`]/g))
      found.set(match[1] as string, file);
  }
  return found;
}

// One of each error class, so that a class added without a sample here fails the "every class" test.
const SAMPLES: Error[] = [
  new FanwatchError("FANWATCH_USAGE", "x"),
  new InputError("x", "body"),
  new HealthNotFoundError("7"),
  new HealthConflictError("x"),
  new UsageError("x"),
  new ConfigError("x"),
  new ScaleLabelError("x"),
  new ModelError("x"),
  new ModelRefusedError("x"),
  new ModelNotFoundError("x"),
  new ModelGateError("x"),
  new NoRegistryError("x"),
  new ModelPointerMovedError("x"),
  new RegistryUnavailableError("x"),
  new DataFormatError("x"),
  new PortInUseError("x"),
  new ScoreRejectedError("x"),
  new HttpStatusError(503, "x"),
  new InfluxQueryError("x"),
  new BodyTooLargeError("x"),
  new BodyTimeoutError("x"),
  new BodyAbortedError("x"),
  new PacketTooLargeError(20, 10),
  new StoreUnavailableError("x"),
  new ContendedError("x"),
  new ScoreUnavailableError("x"),
  new BudgetExhaustedError("x"),
  new PublishFailedError("x"),
  new BrokerUnavailableError("x"),
  new InfluxUnavailableError("x"),
  new CasConflictError("x"),
  new RequestError("FANWATCH_TEMPLATE_BODY_INVALID", "x"),
  new ServerSettingError("x"),
];

describe("the error contract", () => {
  it("docs/errors.md lists every code of lib/errors.ts and of the template, and no other", () => {
    assert.deepEqual([...documentedCodes().keys()].sort(), Object.keys(ALL_CODES).sort());
  });

  it("docs/errors.md gives each code the HTTP status of its table", () => {
    for (const [code, status] of documentedCodes()) assert.equal(status, String(ALL_CODES[code]?.status ?? ""), code);
  });

  it("every code the source uses is in the table", () => {
    const unknown = [...codesInSource()]
      .filter(([code]) => !(code in ALL_CODES))
      .map(([code, file]) => `${code} in ${file}`);
    assert.deepEqual(unknown, []);
    assert.ok(codesInSource().has("FANWATCH_INPUT_INVALID"), "the source scan finds lib/errors.ts's codes");
  });

  it("has a sample of every exported error class, each named after its class", () => {
    const classes = [...Object.entries(errors), ...Object.entries(templateErrors)].filter(
      ([, value]) => typeof value === "function" && value.prototype instanceof Error,
    );
    for (const [name, type] of classes) {
      const sample = SAMPLES.find((s) => s.constructor === type);
      assert.ok(sample !== undefined, `no sample of ${name}`);
      assert.equal(sample.name, name);
    }
    assert.equal(classes.length, SAMPLES.length);
  });

  it("gives every error its table's status, or the one its thrower chose", () => {
    for (const sample of SAMPLES) {
      const { code, status } = sample as Error & { code: string; status?: number };
      assert.ok(code in ALL_CODES, `${sample.name}: ${code}`);
      if (!(sample instanceof HttpStatusError)) assert.equal(status, ALL_CODES[code]?.status, sample.name);
    }
    assert.equal(new InputError("x", "limit", { status: 422 }).status, 422);
    const cause = new Error("under");
    assert.equal(new StoreUnavailableError("x", { cause }).cause, cause);
  });

  it("answers errors with a status as {error, code, field} and leaves the rest to the template's 500", () => {
    assert.deepEqual(errorAnswer(new InputError("explain: must be true or false", "explain")), {
      status: 400,
      body: { error: "explain: must be true or false", code: "FANWATCH_INPUT_INVALID", field: "explain" },
    });
    assert.deepEqual(errorAnswer(new HealthNotFoundError("7"))?.status, 404);
    assert.deepEqual(errorAnswer(new HealthConflictError("already acknowledged"))?.body.field, "action");
    assert.deepEqual(errorAnswer(new StoreUnavailableError("NATS is unreachable")), {
      status: 503,
      body: { error: "NATS is unreachable", code: "FANWATCH_STORE_UNAVAILABLE" },
    });
    // Errors that carry a status they are not to answer with, and errors of others, are not answered here.
    assert.equal(errorAnswer(new HttpStatusError(404, "the gateway answered 404")), undefined);
    assert.equal(errorAnswer(new ConfigError("TFJS_BACKEND must be one of …")), undefined);
    assert.equal(errorAnswer(Object.assign(new Error("from a library"), { status: 400, field: "x" })), undefined);
    assert.equal(errorAnswer("a string"), undefined);
  });

  it("tells usage errors from other known failures", () => {
    for (const usage of [new UsageError("x"), new ConfigError("x"), new ScaleLabelError("x")])
      assert.ok(usage instanceof UsageError && usage.kind === "usage", usage.name);
    for (const failure of [new ModelError("x"), new DataFormatError("x"), new InfluxUnavailableError("x")])
      assert.ok(!(failure instanceof UsageError) && failure.kind !== "usage", failure.name);
  });
});
