import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { describe, it } from "node:test";
import ts from "typescript";
import { REPO_ROOT } from "../support/paths.js";

/**
 * The rooms of the code and what each may import besides itself: docs/architecture.md, "Rooms and
 * what each may import". A pattern names rooms (`*` is one path segment: `lib/*` is every room of
 * lib/); one ending in `.ts` names files. A file in no room fails, so a new room is added here
 * and in the document together.
 */
const RULES: ReadonlyArray<{ room: string; may: readonly string[] }> = [
  { room: "lib/errors", may: [] },
  { room: "lib/domain", may: ["lib/errors"] },
  { room: "lib/infra", may: ["lib/errors"] },
  { room: "lib/mqtt", may: ["lib/infra", "lib/domain", "lib/registry", "lib/errors"] },
  { room: "lib/inference", may: ["lib/domain", "lib/infra", "lib/errors"] },
  { room: "lib/openfaas", may: ["lib/infra", "lib/errors"] },
  { room: "lib/nats", may: ["lib/infra", "lib/domain", "lib/errors"] },
  // The device registry: read by the connector, health, the page, the CLI and the broker's users.
  { room: "lib/registry", may: ["lib/nats", "lib/infra", "lib/domain", "lib/errors"] },
  // The model registry: read by score, predict, the gates and the CLI.
  { room: "lib/models", may: ["lib/inference", "lib/nats", "lib/infra", "lib/domain", "lib/errors"] },
  // Built alone: faas-cli copies templates/node22-ts/ into every function's build context.
  { room: "templates", may: [] },
  // Built from the function's folder plus stack.yml's `configuration.copy` (./lib, ./functions/health).
  // predict runs health's rules (a pure function) on a shadow model's predictions: those files only.
  {
    room: "functions/predict",
    may: ["lib/*", "templates", "functions/health/evaluator.ts", "functions/health/policy.ts"],
  },
  { room: "functions/*", may: ["lib/*", "templates"] },
  { room: "connectors/*", may: ["lib/*"] },
  // A service of its own (fanwatch notifier): reads health's event stream, never health's code.
  { room: "notifier", may: ["lib/*"] },
  { room: "simulation", may: ["lib/*"] },
  { room: "model", may: ["lib/*", "simulation"] },
  // The runner starts functions as processes: of a function it reads the settings, never the code.
  // The page runs under fanwatch start and, later, as a service of its own: it knows no runner.
  { room: "page", may: ["lib/*"] },
  // The local gateway starts functions as processes: of a function it reads the settings, never the code.
  { room: "runtime/gateway", may: ["lib/*", "templates", "functions/*/config.ts"] },
  // The local system assembles every part on one machine.
  {
    room: "runtime/system",
    may: [
      "lib/*",
      "connectors/*",
      "notifier",
      "simulation",
      "templates",
      "functions/*/config.ts",
      "runtime/gateway",
      "page",
    ],
  },
  {
    room: "cli",
    may: ["lib/*", "functions/*", "connectors/*", "notifier", "simulation", "model", "runtime/*", "page", "templates"],
  },
  { room: "test/*", may: ["*"] },
  { room: "bench", may: ["*"] },
];

const LIB_ROOMS = new Set(["domain", "infra", "inference", "models", "mqtt", "nats", "openfaas", "registry"]);

/** The room a repository path (`lib/domain/telemetry.ts`) belongs to, or undefined. */
function roomOf(path: string): string | undefined {
  const [top, second, ...rest] = path.split("/");
  if (top === "lib") {
    if (rest.length === 0) return /^errors(\.[jt]s)?$/.test(second ?? "") ? "lib/errors" : undefined;
    return LIB_ROOMS.has(second ?? "") ? `lib/${second}` : undefined;
  }
  if (top === "functions" || top === "connectors" || top === "test" || top === "runtime")
    return rest.length > 0 ? `${top}/${second}` : undefined;
  if (
    top === "templates" ||
    top === "simulation" ||
    top === "model" ||
    top === "page" ||
    top === "notifier" ||
    top === "cli" ||
    top === "bench"
  )
    return top;
  return undefined;
}

function matches(pattern: string, room: string | undefined, path: string): boolean {
  if (pattern === "*") return true;
  const regex = new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join("[^/]+")}$`,
  );
  return pattern.endsWith(".ts") ? regex.test(path) : room !== undefined && regex.test(room);
}

interface Import {
  /** The importing file, relative to the repository root (`functions/predict/handler.ts`). */
  file: string;
  /** As written: `../../lib/domain/telemetry.js`. */
  specifier: string;
}

/** The repository path a relative import names: `.js` in a specifier stands for the `.ts` beside it. */
function resolveImport({ file, specifier }: Import): string {
  const path = posix.normalize(posix.join(posix.dirname(file), specifier));
  const source = path.replace(/\.js$/, ".ts");
  return path !== source && (existsSync(join(REPO_ROOT, source)) || !existsSync(join(REPO_ROOT, path))) ? source : path;
}

/** Every import that breaks a rule, each naming the file, the import and the rule. */
function ruleViolations(imports: readonly Import[]): string[] {
  const violations: string[] = [];
  for (const i of imports) {
    const from = roomOf(i.file);
    const rule = RULES.find((r) => from !== undefined && matches(r.room, from, i.file));
    const target = resolveImport(i);
    const to = roomOf(target);
    if (from === undefined || rule === undefined) {
      violations.push(`${i.file} is in no room of docs/architecture.md (add it there and to this test's RULES)`);
    } else if (target.startsWith("../")) {
      violations.push(`${i.file} imports "${i.specifier}", outside the repository`);
    } else if (to !== from && !rule.may.some((pattern) => matches(pattern, to, target))) {
      const allowed = rule.may.length === 0 ? "nothing outside itself" : `only itself, ${rule.may.join(", ")}`;
      violations.push(
        `${i.file} imports "${i.specifier}" (${target}, room ${to ?? "none"}): ${rule.room} may import ${allowed}`,
      );
    }
  }
  return [...new Set(violations)];
}

/** Cycles in the graph of rooms (an edge for each import from one room into another). */
function roomCycles(imports: readonly Import[]): string[][] {
  const edges = new Map<string, Set<string>>();
  for (const i of imports) {
    const from = roomOf(i.file);
    const to = roomOf(resolveImport(i));
    if (from === undefined || to === undefined || from === to) continue;
    edges.set(from, (edges.get(from) ?? new Set()).add(to));
  }
  const cycles: string[][] = [];
  const done = new Set<string>();
  const visit = (room: string, path: string[]): void => {
    const at = path.indexOf(room);
    if (at >= 0) {
      cycles.push([...path.slice(at), room]);
      return;
    }
    if (done.has(room)) return;
    for (const next of edges.get(room) ?? []) visit(next, [...path, room]);
    done.add(room);
  };
  for (const room of edges.keys()) visit(room, []);
  return cycles;
}

/** Directories that are not the repository's own files: installed, built, generated, or run-time data. */
const SKIPPED = new Set([".git", "node_modules", "dist", "build", "test-results", ".fanwatch", "model/data"]);

/** The repository's files, relative to its root. Links are skipped: `template` is `templates` again. */
function repositoryFiles(dir = ""): string[] {
  return readdirSync(join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
    if (SKIPPED.has(path) || SKIPPED.has(entry.name) || entry.isSymbolicLink()) return [];
    if (entry.isDirectory()) return repositoryFiles(path);
    return entry.isFile() && !entry.name.endsWith(".log") ? [path] : [];
  });
}

function importsOf(file: string): Import[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(join(REPO_ROOT, file), "utf8"), true, true);
  return importedFiles
    .map((f) => f.fileName)
    .filter((s) => s.startsWith("./") || s.startsWith("../"))
    .map((specifier) => ({ file, specifier }));
}

/**
 * Mentions of documents that are not in the repository. Every `architecture.md` must be
 * docs/architecture.md: written from the root, or relative to the file (`./`, `../`, or a Markdown
 * link target) and resolving there.
 */
// Spelt in parts, so that this file does not itself name what a search for them should not find.
const OUTSIDE_DOCUMENTS = [
  ["..", "shared"].join("/"),
  ["reference-system", "md"].join("."),
  ["openfaas-contract", "md"].join("."),
];

function strayMentions(file: string, text: string): string[] {
  const found: string[] = [];
  for (const outside of OUTSIDE_DOCUMENTS) {
    if (text.includes(outside)) found.push(`${file} mentions ${outside}, which is not in the repository`);
  }
  for (const m of text.matchAll(/(\]\()?([\w./-]*)architecture\.md/g)) {
    const written = `${m[2] ?? ""}architecture.md`;
    const relative = m[1] !== undefined || written.startsWith("./") || written.startsWith("../");
    const path = relative ? posix.normalize(posix.join(posix.dirname(file), written)) : written;
    if (path !== "docs/architecture.md") found.push(`${file} mentions ${written}, which is not docs/architecture.md`);
  }
  return found;
}

const files = repositoryFiles();
const sources = files.filter((f) => f.endsWith(".ts") || f.endsWith(".mjs"));
const imports = sources.flatMap(importsOf);

describe("import rules (docs/architecture.md)", () => {
  it("reads the code of every room", () => {
    for (const room of [
      "lib/errors",
      "lib/domain",
      "lib/infra",
      "lib/mqtt",
      "lib/inference",
      "lib/openfaas",
      "lib/registry",
      "templates",
      "functions/score",
      "connectors/mqtt",
      "simulation",
      "model",
      "runtime/gateway",
      "runtime/system",
      "page",
      "cli",
      "test/unit",
    ]) {
      assert.ok(
        sources.some((f) => roomOf(f) === room),
        `no source file found in ${room}`,
      );
    }
    assert.ok(
      imports.some((i) => i.file === "functions/predict/handler.ts" && resolveImport(i) === "lib/domain/telemetry.ts"),
      "predict's import of lib/domain/telemetry.ts was not seen",
    );
  });

  it("every source file is in a room", () => {
    assert.deepEqual(
      sources.filter((f) => roomOf(f) === undefined),
      [],
      "files in no room of docs/architecture.md (add the room there and to RULES)",
    );
  });

  it("every relative import follows its room's rule", () => {
    assert.deepEqual(ruleViolations(imports), []);
  });

  it("no two rooms import each other, directly or through others", () => {
    assert.deepEqual(roomCycles(imports), []);
  });

  it("catches a breach of each kind", () => {
    const made = (file: string, specifier: string): Import => ({ file, specifier });
    const [upwards] = ruleViolations([made("lib/domain/telemetry.ts", "../../runtime/gateway/gateway.js")]);
    assert.equal(
      upwards,
      'lib/domain/telemetry.ts imports "../../runtime/gateway/gateway.js" (runtime/gateway/gateway.ts, room runtime/gateway): lib/domain may import only itself, lib/errors',
    );
    assert.equal(
      ruleViolations([made("functions/predict/handler.ts", "../score/batcher.js")]).length,
      1,
      "a function importing another",
    );
    assert.equal(
      ruleViolations([made("connectors/mqtt/connector.ts", "../../runtime/gateway/gateway.js")]).length,
      1,
      "runtime imported outside cli",
    );
    assert.equal(
      ruleViolations([made("runtime/system/nats.ts", "../../functions/health/store.js")]).length,
      1,
      "runtime importing a function's code",
    );
    assert.deepEqual(
      ruleViolations([made("runtime/system/nats.ts", "../../functions/health/config.js")]),
      [],
      "runtime may read a function's config",
    );
    assert.equal(
      ruleViolations([made("page/fleet-view.ts", "../runtime/gateway/gateway.js")]).length,
      1,
      "the page reaching into the single-machine runner",
    );
    assert.equal(
      ruleViolations([made("cli/main.ts", "../test/support/paths.js")]).length,
      1,
      "production code importing test/",
    );
    assert.equal(
      ruleViolations([made("templates/node22-ts/server.ts", "../../lib/infra/log.js")]).length,
      1,
      "the template reaching out",
    );
    assert.equal(
      ruleViolations([made("lib/errors.ts", "./infra/log.js")]).length,
      1,
      "lib/errors importing the project",
    );
    assert.match(
      ruleViolations([made("lib/new-thing.ts", "./errors.js")])[0] ?? "",
      /lib\/new-thing\.ts is in no room/,
    );
    assert.deepEqual(
      roomCycles([made("test/support/a.ts", "../../bench/b.js"), made("bench/b.ts", "../test/support/a.js")]),
      [["test/support", "bench", "test/support"]],
    );
  });
});

describe("the repository stands alone", () => {
  // This file names the outside documents in order to forbid them.
  const self = "test/unit/import-rules.test.ts";

  it("no file points at documents outside the repository, and architecture.md is docs/architecture.md", () => {
    const found: string[] = [];
    for (const file of files) {
      if (file === self || file.endsWith("package-lock.json")) continue;
      const bytes = readFileSync(join(REPO_ROOT, file));
      if (bytes.subarray(0, 8192).includes(0)) continue; // binary: the model's weights
      found.push(...strayMentions(file, bytes.toString("utf8")));
    }
    assert.deepEqual(found, []);
    assert.ok(files.includes("docs/architecture.md"), "docs/architecture.md is missing");
  });

  it("catches each kind of stray mention", () => {
    assert.deepEqual(
      strayMentions("docs/start.md", "the contracts are in docs/architecture.md, see [it](architecture.md)"),
      [],
    );
    assert.deepEqual(strayMentions("README.md", "[layout](./docs/architecture.md)"), []);
    assert.equal(strayMentions("lib/domain/x.ts", "// see architecture.md").length, 1);
    assert.equal(strayMentions("README.md", `[x](${OUTSIDE_DOCUMENTS[0]}/docs/architecture.md)`).length, 2);
    assert.equal(strayMentions("docs/x.md", `as ${OUTSIDE_DOCUMENTS[1]} says, and ${OUTSIDE_DOCUMENTS[2]}`).length, 2);
  });
});
