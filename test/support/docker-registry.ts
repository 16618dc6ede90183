import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { freePort } from "../../lib/infra/net.js";
import { eventually } from "./eventually.js";
import { terminate } from "./process.js";

const run = promisify(execFile);

export interface TestDockerRegistry {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Pushes a two-platform image (linux/amd64 and linux/arm64) as `repository:tag` with skopeo; returns its index digest. */
  push(repository: string, tag: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Debian's docker-registry (the CNCF Distribution registry 2.x, what a site runs as its mirror) on
 * a free loopback port, anonymous and without TLS, with images pushed by skopeo as a release
 * machine would (`skopeo copy --all --preserve-digests`). No Docker daemon: the images are OCI
 * layouts written here.
 */
export async function startDockerRegistry(): Promise<TestDockerRegistry> {
  for (const binary of ["docker-registry", "skopeo"])
    await run(binary, ["--version"]).catch(() => {
      throw new Error(`${binary} is missing: apt-get install -y docker-registry skopeo`);
    });
  const dir = await mkdtemp(join(tmpdir(), "fanwatch-registry-"));
  const port = await freePort();
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    `version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: ${join(dir, "data")}}}\nhttp: {addr: 127.0.0.1:${port}}\n`,
  );
  const child: ChildProcess = spawn("docker-registry", ["serve", config], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  await eventually("docker-registry answers GET /v2/", async () => {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode})`);
    return (await fetch(`${url}/v2/`)).status === 200;
  });
  let images = 0;
  return {
    url,
    push: async (repository, tag) => {
      const layout = join(dir, `oci-${images++}`);
      const digest = await writeOciLayout(layout, `${repository}:${tag}`);
      await run("skopeo", [
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        `oci:${layout}:${tag}`,
        `docker://127.0.0.1:${port}/${repository}:${tag}`,
      ]);
      return digest;
    },
    stop: async () => {
      await terminate(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** An OCI image layout holding one index of two single-layer images, unique to `seed`; returns the index's digest. */
async function writeOciLayout(dir: string, seed: string): Promise<string> {
  await mkdir(join(dir, "blobs/sha256"), { recursive: true });
  const put = async (bytes: Buffer) => {
    const hex = createHash("sha256").update(bytes).digest("hex");
    await writeFile(join(dir, "blobs/sha256", hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const manifests = [];
  for (const architecture of ["amd64", "arm64"]) {
    const tar = tarOf("seed.txt", Buffer.from(`${seed} ${architecture}\n`));
    const layer = await put(gzipSync(tar));
    const diffId = `sha256:${createHash("sha256").update(tar).digest("hex")}`;
    const config = await put(
      Buffer.from(
        JSON.stringify({ architecture, os: "linux", rootfs: { type: "layers", diff_ids: [diffId] }, config: {} }),
      ),
    );
    const manifest = await put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
          layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
        }),
      ),
    );
    manifests.push({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      ...manifest,
      platform: { architecture, os: "linux" },
    });
  }
  const mediaType = "application/vnd.oci.image.index.v1+json";
  const index = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests })));
  const tag = seed.slice(seed.lastIndexOf(":") + 1);
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType, ...index, annotations: { "org.opencontainers.image.ref.name": tag } }],
    }),
  );
  return index.digest;
}

/** A ustar archive of one file (512-byte header, the content padded to 512, two zero blocks). */
function tarOf(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write("0000644\0", 100);
  header.write("0000000\0", 108);
  header.write("0000000\0", 116);
  header.write(`${content.length.toString(8).padStart(11, "0")}\0`, 124);
  header.write("00000000000\0", 136);
  header.write("        ", 148);
  header.write("0", 156);
  header.write("ustar\0" + "00", 257);
  const sum = header.reduce((total, byte) => total + byte, 0);
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  const padded = Buffer.alloc(Math.ceil(content.length / 512) * 512);
  content.copy(padded);
  return Buffer.concat([header, padded, Buffer.alloc(1024)]);
}
