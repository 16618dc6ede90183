import { spawn } from "node:child_process";
import { once } from "node:events";
import { cp, mkdir, readdir, readFile, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, posix, relative, sep } from "node:path";

/**
 * Runs a Dockerfile's stages without a container engine (none runs here): each stage gets its own
 * folder as root filesystem, COPY and WORKDIR act on those folders, RUN executes with the stage's
 * ENV in the mapped working directory. Base images are not available, so the host's Node.js and
 * npm stand in for node:22-alpine, and a COPY --from an external image (of-watchdog) is recorded
 * as skipped. RUN lines must therefore use paths relative to WORKDIR, as ours do.
 */
export interface Instruction {
  op: string;
  args: string;
}

export interface Stage {
  name: string;
  image: string;
  root: string;
  workdir: string;
  env: Record<string, string>;
  user?: string;
  healthcheck?: string;
  cmd?: string;
  /** Whether any instruction ran in this stage, i.e. its root holds more than its base image. */
  built: boolean;
}

export interface BuildResult {
  stages: Stage[];
  skipped: string[];
  final: Stage;
}

export function parseDockerfile(text: string): Instruction[] {
  const joined = text.replace(/\\\r?\n/g, " ");
  return joined
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const [op = "", ...rest] = line.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(" ") };
    });
}

export function parseEnv(args: string): Record<string, string> {
  const env: Record<string, string> = {};
  const pairs = /([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|(\S*))/g;
  if (!args.includes("=")) {
    const [key = "", ...value] = args.split(/\s+/);
    env[key] = value.join(" ");
    return env;
  }
  for (const m of args.matchAll(pairs)) env[m[1] as string] = m[3] ?? m[4] ?? "";
  return env;
}

export async function buildDockerfile(
  instructions: Instruction[],
  context: string,
  workspace: string,
  log: (line: string) => void = () => {},
): Promise<BuildResult> {
  const stages: Stage[] = [];
  const skipped: string[] = [];
  let stage: Stage | undefined;
  for (const { op, args } of instructions) {
    if (op === "FROM") {
      const words = args.split(/\s+/).filter((w) => !w.startsWith("--platform="));
      const name = words[1]?.toUpperCase() === "AS" ? (words[2] ?? "") : String(stages.length);
      stage = {
        name,
        image: words[0] ?? "",
        root: join(workspace, `stage-${stages.length}`),
        workdir: "/",
        env: {},
        built: false,
      };
      await mkdir(stage.root, { recursive: true });
      stages.push(stage);
      continue;
    }
    if (stage === undefined) {
      if (op === "ARG") continue;
      throw new Error(`${op} before FROM`);
    }
    const current: Stage = stage;
    current.built = true;
    switch (op) {
      case "ARG":
      case "EXPOSE":
        break;
      case "ENV":
        Object.assign(current.env, parseEnv(args));
        break;
      case "WORKDIR":
        current.workdir = posix.resolve(current.workdir, args);
        await mkdir(join(current.root, current.workdir), { recursive: true });
        break;
      case "USER":
        current.user = args;
        break;
      case "HEALTHCHECK":
        current.healthcheck = args;
        break;
      case "CMD":
        current.cmd = args;
        break;
      case "COPY": {
        const words = args.split(/\s+/);
        const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
        const paths = words.filter((w) => !w.startsWith("--"));
        const dest = paths.pop() ?? "";
        const fromStage = stages.find((s) => s.name === from);
        if (from !== undefined && fromStage?.built !== true) {
          // A stage that only names an image (of-watchdog): its files would come from that image.
          skipped.push(`COPY ${args} (image ${fromStage?.image ?? from} is not available here)`);
          break;
        }
        const source = fromStage?.root ?? context;
        const ignored = from === undefined ? await dockerignore(context) : () => false;
        await copyInto(
          source,
          paths,
          join(current.root, posix.resolve(current.workdir, dest)),
          dest.endsWith("/") || paths.length > 1,
          ignored,
        );
        break;
      }
      case "RUN": {
        // BuildKit cache mounts (--mount=type=cache) only keep npm's cache out of the image; here
        // npm uses the host's cache.
        const command = args.replace(/^(--mount=\S+\s+)+/, "");
        log(`RUN ${command}`);
        const child = spawn("sh", ["-c", command], {
          cwd: join(current.root, current.workdir),
          env: { ...hostEnv(), ...current.env },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let output = "";
        child.stdout.on("data", (d: Buffer) => (output += d.toString()));
        child.stderr.on("data", (d: Buffer) => (output += d.toString()));
        const [code] = (await once(child, "close")) as [number];
        if (code !== 0) throw new Error(`RUN ${command} failed (${code}):\n${output}`);
        log(output.trim());
        break;
      }
      default:
        throw new Error(`unsupported Dockerfile instruction ${op}`);
    }
  }
  if (stage === undefined) throw new Error("no FROM");
  return { stages, skipped, final: stage };
}

/** The host's environment minus what our own test runner adds (a docker build has neither). */
function hostEnv(): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  return env;
}

// The subset of .dockerignore our template uses: a top-level name, or "**/name" for a name anywhere.
async function dockerignore(context: string): Promise<(path: string) => boolean> {
  const lines = (await readFile(join(context, ".dockerignore"), "utf8").catch(() => ""))
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const anywhere = lines.filter((l) => l.startsWith("**/")).map((l) => l.slice(3));
  const top = lines.filter((l) => !l.startsWith("**/"));
  return (path) => {
    const parts = relative(context, path).split(sep);
    return top.includes(parts[0] ?? "") || parts.some((p) => anywhere.includes(p));
  };
}

async function copyInto(
  sourceRoot: string,
  patterns: string[],
  dest: string,
  destIsDir: boolean,
  ignored: (path: string) => boolean,
): Promise<void> {
  for (const pattern of patterns) {
    const sources = await expand(sourceRoot, pattern);
    if (sources.length === 0 && !pattern.includes("*")) throw new Error(`COPY: ${pattern} does not exist`);
    for (const src of sources) {
      const isDir = (await stat(src)).isDirectory();
      const target = isDir ? dest : destIsDir ? join(dest, basename(src)) : dest;
      await mkdir(isDir ? target : dirname(target), { recursive: true });
      await cp(src, target, { recursive: true, filter: (path) => !ignored(path) });
    }
  }
}

async function expand(root: string, pattern: string): Promise<string[]> {
  const path = isAbsolute(pattern) ? pattern : posix.join("/", pattern);
  if (!basename(path).includes("*")) return [join(root, path)];
  const dir = join(root, dirname(path));
  const regex = new RegExp(
    `^${basename(path)
      .replace(/[.+?^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")}$`,
  );
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => regex.test(n)).map((n) => join(dir, n));
}
