// Build step of the node22-ts template, run by the Dockerfile in the build context that faas-cli
// writes: this template's files at the root, the handler folder in function/, and the stack's
// `configuration.copy` paths inside function/ (function/lib, function/model/...).
//
// 1. Bundles index.ts (server + function/handler.ts + the shared code it imports) into
//    out/index.mjs. Packages that carry native or WebAssembly code stay external.
// 2. Bundles and runs the function's *.test.ts files; a failure fails the build.
// 3. Copies the function's data files (everything but code, tests and packages) into out/, and
//    writes out/package.json listing the external packages for the ship stage to install.
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
      const target = rest.startsWith("templates/node22-ts/") ? join(root, rest.slice("templates/node22-ts/".length)) : join(functionDir, rest);
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
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
};

rmSync(outDir, { recursive: true, force: true });
const result = await esbuild.build({ ...common, entryPoints: [join(root, "index.ts")], outfile: join(outDir, "index.mjs"), metafile: true, minifyWhitespace: true, sourcemap: "linked" });
console.log(`bundled ${relative(root, join(outDir, "index.mjs"))} (${Object.keys(result.metafile.inputs).length} modules)`);

const tests = listFiles(functionDir).filter((f) => f.endsWith(".test.ts"));
if (tests.length > 0) {
  rmSync(testDir, { recursive: true, force: true });
  await esbuild.build({ ...common, entryPoints: tests, outdir: testDir, outExtension: { ".js": ".mjs" } });
  const run = spawnSync(process.execPath, ["--test", ...readdirSync(testDir).filter((f) => f.endsWith(".mjs")).map((f) => join(testDir, f))], { cwd: functionDir, stdio: "inherit", env: { ...process.env, LOG_LEVEL: "silent" } });
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
const templatePackage = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const versions = { ...templatePackage.dependencies, ...fnPackage.dependencies };
const imported = new Set(
  Object.values(result.metafile.outputs).flatMap((o) => o.imports.filter((i) => i.external && !i.path.startsWith("node:") && !builtinModules.includes(i.path)).map((i) => packageName(i.path))),
);
const dependencies = Object.fromEntries([...imported].sort().map((name) => [name, versions[name] ?? "*"]));
writeFileSync(
  join(outDir, "package.json"),
  `${JSON.stringify({ name: fnPackage.name ?? "function", private: true, type: "module", dependencies, optionalDependencies: fnPackage.optionalDependencies ?? {} }, null, 2)}\n`,
);
console.log(`external packages for the image: ${Object.keys(dependencies).join(", ") || "none"}`);

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
