import { InvalidArgumentError, type Command } from "commander";
import { fileURLToPath } from "node:url";
import type { Io } from "./parse.js";
import { REPO_ROOT } from "./paths.js";
import { readCredentials } from "./release/credentials.js";
import { qualifiedImageRef } from "./release/image-ref.js";
import { PIN_OUTPUTS, resolvePlan, writePins } from "./release/pin.js";
import { planImages, planRelease, type Release } from "./release/plan.js";
import { DEFAULT_SOURCES, type SiteSources } from "./release/site-images.js";
import { releaseTag } from "./release/tag.js";

interface SourceOptions {
  tag: string;
  registry: string;
  root: string;
  chartValues?: string;
  kubectl: string;
}

interface PinOptions extends SourceOptions {
  credentials?: string;
  mirror: string[];
}

/**
 * `fanwatch release tag|images|pin` (docs/offline.md): a release's tag, every image a site needs,
 * and the pins by digest. A fanwatch command rather than a shell script: it shares the CLI's error
 * contract and progress lines, reads stack.yml with the gateway's own parser, and runs in the tests.
 */
export function addReleaseCommand(program: Command, io: Io): void {
  const release = program
    .command("release")
    .description("a release's image tag, the images a site needs, and their pins by digest (docs/offline.md)");

  release
    .command("tag")
    .description(
      "print the tag for this commit's images: <package version>-<commit> (refused with uncommitted changes)",
    )
    .option("--root <dir>", "the repository", fileURLToPath(REPO_ROOT))
    .action(async (opts: { root: string }) => io.out(await releaseTag(opts.root)));

  const images = withSources(
    release
      .command("images")
      .description(
        "list every image the site pulls for a release (manifests, functions, OpenFaaS CE), one qualified reference a line, without contacting a registry",
      ),
  );
  images.action(async (opts: SourceOptions) => {
    const plan = await planRelease(releaseOf(opts), sourcesOf(opts));
    for (const ref of planImages(plan)) io.out(qualifiedImageRef(ref));
    io.err(
      `${planImages(plan).length} images: ${plan.manifests.length} of the manifests, ${plan.functions.length} functions, ${plan.openfaas.length} of OpenFaaS CE`,
    );
  });

  const pin = withSources(
    release
      .command("pin")
      .description(
        `resolve every image's digest from its registry and write ${PIN_OUTPUTS.component} (the manifests' pins), ${PIN_OUTPUTS.list} and ${PIN_OUTPUTS.stack}`,
      ),
  )
    .option(
      "--credentials <file>",
      "registry logins, a Docker config.json ({auths: {<host>: {auth}}}); without it, public images only",
    )
    .option(
      "--mirror <host=url>",
      "ask this URL instead of registry <host> (docker.io=https://registry.site.lan:5000/docker.io: the path is the rewrite's prefix; http:// without TLS): checks that a site mirror serves each digest; repeatable",
      (value: string, mirrors: string[]) => [...mirrors, mirrorOption(value)],
      [] as string[],
    );
  pin.action(async (opts: PinOptions) => {
    const sources = sourcesOf(opts);
    const releaseInfo = releaseOf(opts);
    const plan = await planRelease(releaseInfo, sources);
    const credentials = opts.credentials === undefined ? undefined : await readCredentials(opts.credentials);
    const digests = await resolvePlan(
      plan,
      { credentials, mirrors: new Map(opts.mirror.map((m) => m.split(/=(.*)/s).slice(0, 2) as [string, string])) },
      { resolving: (done, total, image) => io.progress(`resolving ${done}/${total} ${image}`) },
    );
    io.progressDone();
    for (const path of await writePins(releaseInfo, plan, digests, sources)) io.out(`wrote ${path}`);
    io.err(`pinned ${digests.size} images of release ${releaseInfo.tag} by digest`);
  });
}

/** `host=url` with a URL commander can refuse naming the flag. */
function mirrorOption(value: string): string {
  const [host = "", url = ""] = value.split(/=(.*)/s);
  if (host === "" || !URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol))
    throw new InvalidArgumentError(`--mirror takes <registry host>=<http or https URL>, not "${value}".`);
  return value;
}

function withSources(command: Command): Command {
  return command
    .requiredOption("--tag <tag>", "the release's tag on our images (fanwatch release tag prints it)")
    .option(
      "--registry <path>",
      "where our images were pushed: <registry>/fanwatch, <registry>/<function>",
      "ghcr.io/fanwatch",
    )
    .option("--root <dir>", "the repository", fileURLToPath(REPO_ROOT))
    .option("--chart-values <file>", "the OpenFaaS chart's values.yaml, for a chart version fanwatch does not know")
    .option("--kubectl <path>", "kubectl, whose `kustomize` renders the manifests", DEFAULT_SOURCES.kubectl);
}

function releaseOf(opts: SourceOptions): Release {
  return { tag: opts.tag, registry: opts.registry.replace(/\/+$/, "") };
}

function sourcesOf(opts: SourceOptions): SiteSources {
  return { ...DEFAULT_SOURCES, root: opts.root, kubectl: opts.kubectl, chartValues: opts.chartValues };
}
