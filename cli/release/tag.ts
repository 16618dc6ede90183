import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { z } from "zod";
import { UsageError } from "../../lib/errors.js";

const run = promisify(execFile);

/**
 * The tag a release's images carry: package.json's version and the commit they were built from
 * (0.1.0-6f44e69c1a2b), so that no two builds share a tag and a tag says what is in it. A tree
 * with uncommitted changes is refused: its images would not match the commit the tag names.
 */
export async function releaseTag(root: string): Promise<string> {
  const { version } = z
    .object({ version: z.string() })
    .parse(JSON.parse(await readFile(join(root, "package.json"), "utf8")));
  const git = async (...args: string[]) => {
    try {
      return (await run("git", ["-C", root, ...args])).stdout.trim();
    } catch (error) {
      throw new UsageError(`git ${args.join(" ")} failed in ${root}: ${(error as Error).message.trim()}`, {
        cause: error,
      });
    }
  };
  const commit = await git("rev-parse", "--short=12", "HEAD");
  const changed = await git("status", "--porcelain", "--untracked-files=no");
  if (changed !== "")
    throw new UsageError(
      `the working tree has uncommitted changes (${changed.split("\n").length} files): commit them first, so that the tag ${version}-${commit} names what is built`,
    );
  return `${version}-${commit}`;
}
