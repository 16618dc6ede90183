import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import * as batch from "kubernetes-models/batch/v1";
import * as apps from "kubernetes-models/apps/v1";
import * as core from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";
import { freePort } from "../../lib/infra/net.js";
import { findNatsServer } from "../../runtime/system/nats.js";
import { REPO_ROOT } from "../support/paths.js";
import { waitForOutput } from "../support/process.js";

// What can be checked here of deploy/nats/nats.conf, deploy/k3s/base/nats.yaml and nats-backup.yaml:
// the configuration starts Debian's real nats-server (2.9.10), and the probes' paths answer 200 on it.

interface Probe {
  httpGet: { path: string; port: string };
  failureThreshold?: number;
  periodSeconds?: number;
}
interface Pod {
  securityContext: { runAsNonRoot?: boolean; fsGroup?: number };
  automountServiceAccountToken?: boolean;
  containers: Array<{
    image: string;
    args: string[];
    env: Array<{ name: string; value: string }>;
    startupProbe?: Probe;
    readinessProbe?: Probe;
    livenessProbe?: Probe;
    resources?: { limits?: Record<string, string> };
    securityContext: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
    volumeMounts: Array<{ name: string; mountPath: string }>;
  }>;
  volumes: Array<{ name: string; persistentVolumeClaim?: { claimName: string }; configMap?: { name: string } }>;
}
interface Manifest {
  kind: string;
  metadata: { name: string };
  spec: {
    serviceName?: string;
    clusterIP?: string;
    selector?: Record<string, string>;
    template?: { metadata: { labels: Record<string, string> }; spec: Pod };
    jobTemplate?: { spec: { template: { metadata: { labels: Record<string, string> }; spec: Pod } } };
  };
}

async function manifests(file: string): Promise<Manifest[]> {
  const text = await readFile(join(REPO_ROOT, "deploy/k3s/base", file), "utf8");
  return parseAllDocuments(text).map((d) => d.toJS() as Manifest);
}

const CONF = join(REPO_ROOT, "deploy/nats/nats.conf");

/** nats-server's version, e.g. [2, 9, 10]. */
function serverVersion(binary: string): number[] {
  const text = execFileSync(binary, ["--version"], { encoding: "utf8" });
  return (/v(\d+)\.(\d+)\.(\d+)/.exec(text) ?? []).slice(1).map(Number);
}

describe("NATS on K3s: its configuration, probes, headless Service and backup CronJob", { timeout: 60_000 }, () => {
  const binary = findNatsServer();
  let dir: string;
  let server: ChildProcessWithoutNullStreams | undefined;
  let monitor: number;
  let client: number;
  let nats: Manifest[];

  before(async () => {
    assert.ok(binary !== undefined, "nats-server is missing: apt-get install -y nats-server");
    dir = await mkdtemp(join(tmpdir(), "fanwatch-nats-conf-"));
    nats = await manifests("nats.yaml");
  });

  after(async () => {
    server?.kill("SIGKILL");
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("starts the real nats-server on the shipped nats.conf (its store_dir and ports moved here)", async () => {
    const shipped = await readFile(CONF, "utf8");
    assert.match(shipped, /store_dir: \/data/);
    assert.match(shipped, /sync_interval: 10s/);
    let conf = shipped.replace("store_dir: /data", `store_dir: ${JSON.stringify(join(dir, "store"))}`);
    const [major = 0, minor = 0] = serverVersion(binary as string);
    if (major === 2 && minor < 10) {
      // sync_interval came with nats-server 2.10 (the image's): Debian's 2.9 refuses it, by name.
      await writeFile(join(dir, "as-shipped.conf"), conf);
      const refused = spawn(binary as string, ["-c", join(dir, "as-shipped.conf"), "-p", "-1", "-m", "-1"]);
      let said = "";
      refused.stderr.on("data", (d: Buffer) => (said += d.toString()));
      refused.stdout.on("data", (d: Buffer) => (said += d.toString()));
      await new Promise((resolve) => refused.once("close", resolve));
      assert.match(said, /unknown field "sync_interval"/);
      conf = conf.replace(/^\s*sync_interval:.*$/m, "");
    }
    await writeFile(join(dir, "nats.conf"), conf);
    [client, monitor] = await Promise.all([freePort(), freePort()]);
    // Flags beat the file: the ports are this machine's free ones, the rest is the shipped file.
    server = spawn(binary as string, ["-c", join(dir, "nats.conf"), "-p", String(client), "-m", String(monitor)]);
    await waitForOutput(server, /Server is ready/);
  });

  it("answers 200 on each of the probes' paths once its streams and a bucket are there", async () => {
    const nc = await connect({ servers: `127.0.0.1:${client}` });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "FAN_HEALTH_EVENTS", subjects: ["fanwatch.health.>"] });
      await new Kvm(jetstream(nc)).create("fan_health");
    } finally {
      await nc.close();
    }
    const container = nats.find((m) => m.kind === "StatefulSet")?.spec.template?.spec.containers[0];
    const probes = {
      startup: container?.startupProbe,
      readiness: container?.readinessProbe,
      liveness: container?.livenessProbe,
    };
    // As NATS's Helm chart: the full check at start, lighter ones after.
    assert.deepEqual(Object.fromEntries(Object.entries(probes).map(([k, p]) => [k, p?.httpGet.path])), {
      startup: "/healthz",
      readiness: "/healthz?js-server-only=true",
      liveness: "/healthz?js-enabled-only=true",
    });
    for (const [name, probe] of Object.entries(probes)) {
      assert.equal(probe?.httpGet.port, "monitor", name);
      const answer = await fetch(`http://127.0.0.1:${monitor}${probe?.httpGet.path ?? ""}`);
      assert.equal(answer.status, 200, `${name} probe ${probe?.httpGet.path}`);
      assert.deepEqual(await answer.json(), { status: "ok" });
    }
    assert.ok(
      (probes.startup?.failureThreshold ?? 0) * (probes.startup?.periodSeconds ?? 0) >= 600,
      "10 minutes and more to recover a store",
    );
  });

  it("is governed by the headless Service nats-headless and mounts the generated nats-config", async () => {
    const set = nats.find((m) => m.kind === "StatefulSet");
    const services = [...nats, ...(await manifests("headless-services.yaml"))];
    const governing = services.find((m) => m.kind === "Service" && m.metadata.name === set?.spec.serviceName);
    assert.equal(governing?.spec.clusterIP, "None");
    for (const [k, v] of Object.entries(governing?.spec.selector ?? {}))
      assert.equal(set?.spec.template?.metadata.labels[k], v);
    assert.equal(nats.filter((m) => m.kind === "ConfigMap").length, 0, "the ConfigMap is generated (deploy/nats)");
    assert.equal(set?.spec.template?.spec.volumes.find((v) => v.name === "config")?.configMap?.name, "nats-config");
    for (const m of nats)
      assert.doesNotThrow(() =>
        (m.kind === "Service" ? new core.Service(m) : new apps.StatefulSet(m as never)).validate(),
      );
    const rendered = parseAllDocuments(
      execFileSync("kubectl", ["kustomize", join(REPO_ROOT, "deploy/nats")], { encoding: "utf8" }),
    ).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string; namespace: string }; data: Record<string, string> },
    );
    assert.equal(rendered.length, 1);
    assert.match(
      rendered[0]?.metadata.name ?? "",
      /^nats-config-[a-z0-9]{10}$/,
      "named with a hash of nats.conf: an edit rolls NATS",
    );
    assert.equal(rendered[0]?.metadata.namespace, "fanwatch");
    assert.equal(rendered[0]?.data["nats.conf"], await readFile(CONF, "utf8"));
  });

  it("backs up with the service image from a hardened pod that the NetworkPolicy nats-admin lets reach NATS", async () => {
    const objects = await manifests("nats-backup.yaml");
    const cron = objects.find((m) => m.kind === "CronJob");
    assert.doesNotThrow(() => new batch.CronJob(cron as never).validate());
    const claim = objects.find((m) => m.kind === "PersistentVolumeClaim");
    assert.doesNotThrow(() => new core.PersistentVolumeClaim(claim).validate());
    const pod = cron?.spec.jobTemplate?.spec.template;
    assert.equal(pod?.metadata.labels["fanwatch.io/nats-admin"], "true");
    const spec = pod?.spec;
    const [c] = spec?.containers ?? [];
    assert.match(c?.image ?? "", /^ghcr\.io\/fanwatch\/fanwatch:/);
    assert.deepEqual(c?.args.slice(0, 4), ["nats", "backup", "--into", "/backups"]);
    assert.equal(c?.env.find((e) => e.name === "NATS_URL")?.value, "nats://nats.fanwatch:4222");
    assert.equal(spec?.securityContext.runAsNonRoot, true);
    assert.equal(spec?.automountServiceAccountToken, false);
    assert.equal(c?.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c?.securityContext.allowPrivilegeEscalation, false);
    assert.ok(c?.resources?.limits?.memory !== undefined);
    const mount = c?.volumeMounts.find((m) => m.mountPath === "/backups");
    assert.equal(
      spec?.volumes.find((v) => v.name === mount?.name)?.persistentVolumeClaim?.claimName,
      claim?.metadata.name,
    );
  });
});
