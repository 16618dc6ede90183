// Build step of the node22-ts template, run by the Dockerfile in the build context that faas-cli
// writes: this template's files at the root, the handler folder in function/, and the stack's
// `configuration.copy` paths inside function/ (function/lib, function/model/...).
//
// 1. Bundles index.ts (server + function/handler.ts + the shared code it imports) into
//    out/index.mjs. Packages that carry native or WebAssembly code stay external.
// 2. Bundles and runs the function's *.test.ts files; a failure fails the build.
// 3. Copies the function's data files (everything but code, tests and packages) into out/, and
//    writes out/package.json and out/package-lock.json: the external packages, at the versions
//    the build installed and tested, for the ship stage to `npm ci` on every target platform.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import * as esbuild from "esbuild";

const root = resolve(process.argv[2] ?? ".");
const functionDir = join(root, "function");
const outDir = join(root, "out");
const testDir = join(functionDir, ".test-build");
const EXTERNAL = ["@tensorflow/*"];

// In the repository a handler reaches shared code as ../../lib/... and this template as
// ../../templates/node22-ts/...; in the build context those are function/lib/... and ./...
const repositoryLayout = {
  name: "repository-layout",
  setup(build) {
    build.onResolve({ filter: /^\.\.\/\.\.\// }, (args) => {
      if (dirname(args.importer) !== functionDir) return undefined;
      const rest = args.path.slice("../../".length);
      const target = rest.startsWith("templates/node22-ts/")
        ? join(root, rest.slice("templates/node22-ts/".length))
        : join(functionDir, rest);
      return { path: resolveTs(target) };
    });
  },
};

function resolveTs(path) {
  const ts = path.replace(/\.js$/, ".ts");
  return existsSync(ts) ? ts : path;
}

const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: EXTERNAL,
  plugins: [repositoryLayout],
  logLevel: "warning",
  // Bundled CommonJS packages call require(); give the ES module one.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
};

rmSync(outDir, { recursive: true, force: true });
const result = await esbuild.build({
  ...common,
  entryPoints: [join(root, "index.ts")],
  outfile: join(outDir, "index.mjs"),
  metafile: true,
  minifyWhitespace: true,
  sourcemap: "linked",
});
console.log(
  `bundled ${relative(root, join(outDir, "index.mjs"))} (${Object.keys(result.metafile.inputs).length} modules)`,
);

const tests = listFiles(functionDir).filter((f) => f.endsWith(".test.ts"));
if (tests.length > 0) {
  rmSync(testDir, { recursive: true, force: true });
  await esbuild.build({ ...common, entryPoints: tests, outdir: testDir, outExtension: { ".js": ".mjs" } });
  const run = spawnSync(
    process.execPath,
    [
      "--test",
      ...readdirSync(testDir)
        .filter((f) => f.endsWith(".mjs"))
        .map((f) => join(testDir, f)),
    ],
    { cwd: functionDir, stdio: "inherit", env: { ...process.env, LOG_LEVEL: "silent" } },
  );
  rmSync(testDir, { recursive: true, force: true });
  if (run.status !== 0) {
    console.error("function tests failed");
    process.exit(1);
  }
} else {
  console.log("no function tests (*.test.ts) found");
}

for (const file of listFiles(functionDir)) {
  if (/\.(ts|mts|cts)$/.test(file) || /(^|\/)package(-lock)?\.json$/.test(relative(functionDir, file))) continue;
  const target = join(outDir, relative(functionDir, file));
  mkdirSync(dirname(target), { recursive: true });
  cpSync(file, target);
}

const fnPackage = JSON.parse(readFileSync(join(functionDir, "package.json"), "utf8"));
const imported = new Set(
  Object.values(result.metafile.outputs).flatMap((o) =>
    o.imports
      .filter((i) => i.external && !i.path.startsWith("node:") && !builtinModules.includes(i.path))
      .map((i) => packageName(i.path)),
  ),
);
// esbuild leaves a require() it cannot resolve external only when it sits in a try/catch: an
// optional package (ws's bufferutil, debug's supports-color) that was not installed, and that the
// code runs without. Those are left out; only the packages named in EXTERNAL are shipped.
const optional = [...imported].filter((name) => !isExternal(name));
if (optional.length > 0)
  console.log(`optional packages left out (not installed, required in a try/catch): ${optional.sort().join(", ")}`);
const dependencies = Object.fromEntries(
  [...imported]
    .filter(isExternal)
    .sort()
    .map((name) => [name, installedVersion(name)]),
);
const optionalDependencies = Object.fromEntries(
  Object.keys(fnPackage.optionalDependencies ?? {})
    .sort()
    .map((name) => [name, pinned(name, fnPackage.optionalDependencies[name])]),
);
writeFileSync(
  join(outDir, "package.json"),
  `${JSON.stringify({ name: fnPackage.name ?? "function", private: true, type: "module", dependencies, optionalDependencies }, null, 2)}\n`,
);
writeLock();
console.log(
  `external packages for the image: ${
    Object.entries(dependencies)
      .map(([n, v]) => `${n}@${v}`)
      .join(", ") || "none"
  }`,
);

function isExternal(name) {
  return EXTERNAL.some((pattern) =>
    pattern.endsWith("/*") ? name.startsWith(pattern.slice(0, -1)) : name === pattern,
  );
}

/** The exact version the build installed (and the tests ran with); a clear failure if there is none. */
function installedVersion(name) {
  for (const dir of [functionDir, root]) {
    const manifest = join(dir, "node_modules", name, "package.json");
    if (existsSync(manifest)) return JSON.parse(readFileSync(manifest, "utf8")).version;
  }
  fail(
    `${name} is imported and left external (${EXTERNAL.join(", ")}) but is not installed: add it to function/package.json "dependencies" with a pinned version`,
  );
}

/** An optional dependency must name one version: it cannot be checked here, since it may not install. */
function pinned(name, range) {
  if (!/^\d+\.\d+\.\d+(-[\w.]+)?$/.test(String(range)))
    fail(
      `optionalDependencies.${name} is "${range}": pin one exact version (e.g. "4.22.0") so every platform installs the same`,
    );
  return range;
}

/**
 * out/package-lock.json: the function's own lock pruned to the shipped packages (npm keeps every
 * locked version), or resolved once here when the function has none. It is written on the build
 * platform and holds every platform's optional binaries, so `npm ci` installs the same tree on
 * amd64 and arm64.
 */
function writeLock() {
  const lock = join(functionDir, "package-lock.json");
  if (existsSync(lock)) cpSync(lock, join(outDir, "package-lock.json"));
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const run = spawnSync(npm, ["install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"], {
    cwd: outDir,
    stdio: "inherit",
  });
  if (run.status !== 0)
    fail("could not write out/package-lock.json for the external packages (npm install --package-lock-only failed)");
}

function fail(message) {
  console.error(`build.mjs: ${message}`);
  process.exit(1);
}

function packageName(specifier) {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === "node_modules" || entry.name === ".test-build") return [];
    const path = join(dir, entry.name);
    return entry.isDirectory() ? listFiles(path) : [path];
  });
}
