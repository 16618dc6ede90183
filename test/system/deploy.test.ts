import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as apps from "kubernetes-models/apps/v1";
import * as networking from "kubernetes-models/networking.k8s.io/v1";
import * as storage from "kubernetes-models/storage.k8s.io/v1";
import * as core from "kubernetes-models/v1";
import { parse, parseAllDocuments } from "yaml";
import { z } from "zod";
import { allows, OUTSIDE, type NetworkPolicy, type Peer } from "../support/network-policy.js";
import { REPO_ROOT } from "../support/paths.js";

// No cluster runs here: what can be proved offline is proved on what `kubectl kustomize` renders.
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  env?: Array<{ name: string; value?: string }>;
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string }>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: unknown;
  readinessProbe?: unknown;
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsNonRoot?: boolean;
    capabilities?: { drop?: string[] };
  };
}
interface PodSpec {
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  containers: Container[];
  initContainers?: Container[];
  volumes?: Array<{
    name: string;
    persistentVolumeClaim?: { claimName: string };
    secret?: { secretName: string };
    configMap?: { name: string };
    emptyDir?: unknown;
  }>;
}
interface Workload extends K8sObject {
  spec: {
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: Array<{ spec: { storageClassName: string } }>;
  };
}

function render(dir: string): K8sObject[] {
  let text: string;
  try {
    text = execFileSync("kubectl", ["kustomize", join(REPO_ROOT, dir)], { encoding: "utf8" });
  } catch (error) {
    throw new Error(
      `kubectl kustomize ${dir} failed (kubectl is needed: apt-get install -y kubernetes-client): ${(error as Error).message}`,
      { cause: error },
    );
  }
  return parseAllDocuments(text).map((d) => d.toJS() as K8sObject);
}

/** kustomize wraps a Secret's base64 over lines; the API server's decoder skips the line breaks. */
function asTheApiServerReadsIt(object: K8sObject): K8sObject {
  if (object.kind !== "Secret") return object;
  const { data, ...rest } = object as K8sObject & { data?: Record<string, string> };
  return {
    ...rest,
    data: Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, v.replace(/\s+/g, "")])),
  } as K8sObject;
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": core.Namespace,
  "v1/ConfigMap": core.ConfigMap,
  "v1/Secret": core.Secret,
  "v1/Service": core.Service,
  "v1/PersistentVolumeClaim": core.PersistentVolumeClaim,
  "apps/v1/Deployment": apps.Deployment,
  "apps/v1/StatefulSet": apps.StatefulSet,
  "storage.k8s.io/v1/StorageClass": storage.StorageClass,
  "networking.k8s.io/v1/NetworkPolicy": networking.NetworkPolicy,
};

/** K3s's helm-controller CRD (helm.cattle.io/v1 HelmChart), the fields we use. */
const HelmChartSchema = z.object({
  apiVersion: z.literal("helm.cattle.io/v1"),
  kind: z.literal("HelmChart"),
  metadata: z.object({ name: z.string(), namespace: z.literal("kube-system") }),
  spec: z.strictObject({
    repo: z.url(),
    chart: z.string(),
    version: z.string().regex(/^\d+\.\d+\.\d+$/),
    targetNamespace: z.string(),
    valuesContent: z.string(),
  }),
});

describe("deploy/k3s (rendered with kubectl kustomize, checked offline)", () => {
  let objects: K8sObject[];
  let workloads: Workload[];
  let policies: NetworkPolicy[];
  before(() => {
    objects = [...render("deploy/k3s"), ...render("deploy/k3s/simulator")];
    workloads = objects.filter((o): o is Workload => o.kind === "Deployment" || o.kind === "StatefulSet");
    policies = objects.filter((o) => o.kind === "NetworkPolicy") as unknown as NetworkPolicy[];
  });

  it("renders every part of the system", () => {
    const names = workloads.map((w) => w.metadata.name).sort();
    assert.deepEqual(names, [
      "fan-simulator",
      "grafana",
      "influxdb",
      "mosquitto",
      "mqtt-connector",
      "nats",
      "telegraf",
    ]);
    assert.ok(objects.some((o) => o.kind === "HelmChart"));
  });

  it("validates every object against the Kubernetes API schemas (and the HelmChart CRD's)", () => {
    for (const object of objects) {
      const where = `${object.kind} ${object.metadata.namespace ?? ""}/${object.metadata.name}`;
      if (object.kind === "HelmChart") {
        HelmChartSchema.parse(object);
        continue;
      }
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      assert.ok(Model !== undefined, `no schema for ${object.apiVersion} ${object.kind} (${where})`);
      assert.doesNotThrow(() => new Model(asTheApiServerReadsIt(object) as never).validate(), where);
    }
  });

  it("installs OpenFaaS Community Edition with async and generated basic auth, its gateway inside the cluster only", () => {
    const chart = HelmChartSchema.parse(objects.find((o) => o.kind === "HelmChart"));
    const values = parse(chart.spec.valuesContent) as Record<string, unknown>;
    assert.equal(chart.spec.chart, "openfaas");
    assert.equal(values.openfaasPro, false);
    assert.equal(values.generateBasicAuth, true);
    assert.equal(values.basic_auth, true);
    assert.equal(values.async, true);
    assert.equal(values.functionNamespace, "openfaas-fn");
    // CE authenticates /system/* only: no gateway-external Service, and none of its types would open a node port.
    assert.equal(values.exposeServices, false);
    assert.equal(values.serviceType, "ClusterIP");
  });

  it("opens node ports only for the fans' TLS listener and Grafana", () => {
    const services = objects.filter((o) => o.kind === "Service") as unknown as Array<
      K8sObject & { spec: { type?: string; ports: Array<{ port: number; nodePort?: number }> } }
    >;
    const exposed = services
      .filter((s) => s.spec.type === "NodePort" || s.spec.type === "LoadBalancer")
      .map((s) => `${s.metadata.name}:${s.spec.ports.map((p) => p.port).join(",")}`);
    assert.deepEqual(exposed.sort(), ["grafana:3000", "mosquitto-fans:8883"]);
  });

  it("gives Mosquitto every file its shipped configuration names: TLS from a Secret, credentials built by build-auth.sh", async () => {
    const conf = await readFile(join(REPO_ROOT, "deploy/mosquitto/mosquitto.conf"), "utf8");
    const setting = (key: string) => conf.match(new RegExp(`^${key} (.+)$`, "m"))?.[1];
    const broker = workloads.find((w) => w.metadata.name === "mosquitto")?.spec.template.spec;
    assert.ok(broker);
    const [container] = broker.containers;
    const mounted = (path: string) =>
      (container?.volumeMounts ?? []).find(
        (m) => path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, "")}/`),
      );
    const volume = (name: string | undefined) => broker.volumes?.find((v) => v.name === name);
    for (const key of ["password_file", "acl_file", "certfile", "keyfile", "persistence_location"])
      assert.ok(mounted(setting(key) ?? `(no ${key})`), `${key} ${setting(key)} is mounted`);
    assert.equal(volume(mounted(setting("certfile") ?? "")?.name)?.secret?.secretName, "mosquitto-tls");
    assert.equal(
      volume(mounted(setting("password_file") ?? "")?.name)?.emptyDir !== undefined,
      true,
      "the password file is built at start, not stored",
    );
    const init = broker.initContainers?.find((c) => c.command?.some((part) => part.endsWith("build-auth.sh")));
    assert.ok(init, "an init container runs build-auth.sh");
    const secrets = (broker.volumes ?? []).flatMap((v) => (v.secret === undefined ? [] : [v.secret.secretName]));
    for (const secret of ["mosquitto-users", "mosquitto-fans", "mosquitto-tls"])
      assert.ok(secrets.includes(secret), `the Secret ${secret} is mounted`);
    const config = objects.find(
      (o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("mosquitto-config"),
    ) as unknown as { data: Record<string, string> };
    assert.equal(
      config.data["build-auth.sh"],
      await readFile(join(REPO_ROOT, "deploy/mosquitto/build-auth.sh"), "utf8"),
    );
    assert.equal(config.data["mosquitto.conf"], conf);
  });

  it("sizes the connector for what the broker may have in flight to it", async () => {
    const conf = await readFile(join(REPO_ROOT, "deploy/mosquitto/mosquitto.conf"), "utf8");
    const number = (key: string) => Number(conf.match(new RegExp(`^${key} (\\d+)$`, "m"))?.[1]);
    const windowBytes = number("max_inflight_messages") * number("max_packet_size");
    assert.ok(windowBytes > 0);
    const connector = workloads.find((w) => w.metadata.name === "mqtt-connector")?.spec.template.spec.containers[0];
    assert.equal(connector?.env?.find((e) => e.name === "max_message_bytes")?.value, String(number("max_packet_size")));
    const mebibytes = (quantity: string | undefined) => Number(/^(\d+)Mi$/.exec(quantity ?? "")?.[1]);
    // 98 MB resident at 12,000 readings/s (docs/benchmarks.md), plus the broker's whole window.
    assert.ok(
      mebibytes(connector?.resources?.limits?.memory) * 2 ** 20 >= 98e6 + windowBytes,
      `memory limit ${connector?.resources?.limits?.memory} holds 98 MB and a ${windowBytes / 2 ** 20} MiB window`,
    );
  });

  it("leaves the connector's autoscaling off, with what it needs to turn it on: the gateway's credentials and a way to its 8080", () => {
    const pod = workloads.find((w) => w.metadata.name === "mqtt-connector")?.spec.template.spec;
    const env = new Map((pod?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env.get("autoscale"), "false", "opt-in");
    assert.equal(env.get("basic_auth"), "true");
    const mount = pod?.containers[0]?.volumeMounts?.find((m) => m.mountPath === env.get("secret_mount_path"));
    assert.equal(
      pod?.volumes?.find((v) => v.name === mount?.name)?.secret?.secretName,
      "gateway-basic-auth",
      "the gateway's credentials mounted where secret_mount_path says",
    );
    const url = new URL(env.get("gateway_url") ?? "");
    assert.deepEqual([url.hostname, url.port], ["gateway.openfaas", "8080"]);
    const connector: Peer = {
      namespace: "fanwatch",
      labels: { "app.kubernetes.io/name": "mqtt-connector", "app.kubernetes.io/part-of": "fanwatch" },
    };
    assert.ok(
      allows(policies, connector, { namespace: "openfaas", labels: { app: "gateway" } }, 8080),
      "connector → gateway:8080 (/system/scale-function as well as /function)",
    );
  });

  it("routes predictions to health and lets each MQTT user do only its part with the health topics", async () => {
    const connector = workloads.find((w) => w.metadata.name === "mqtt-connector")?.spec.template.spec.containers[0];
    assert.deepEqual(connector?.env?.find((e) => e.name === "topic")?.value?.split(","), [
      "fan/messages",
      "fan/anomaly",
    ]);
    const acl = await readFile(join(REPO_ROOT, "deploy/mosquitto/acl"), "utf8");
    const rules = (user: string) =>
      (acl.split(/\n(?=user )/).find((block) => block.startsWith(`user ${user}\n`)) ?? "")
        .split("\n")
        .filter((l) => l.startsWith("topic "));
    assert.deepEqual(rules("health"), ["topic write fan/alarm", "topic write fan/deadletter"]);
    for (const rule of ["topic read fan/anomaly", "topic read $share/fanwatch/fan/anomaly"])
      assert.ok(rules("connector").includes(rule), `connector: ${rule}`);
    for (const user of ["telegraf", "writer"])
      assert.ok(rules(user).includes("topic read fan/alarm"), `${user} reads fan/alarm`);
    assert.ok(!rules("predict").some((r) => r.includes("fan/alarm")), "predict may not publish alarms");
  });

  it("pins every image and gives every container resources, probes and a locked-down security context", () => {
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      assert.equal(pod.automountServiceAccountToken, false, `${w.metadata.name}: no API token`);
      assert.equal(pod.securityContext?.runAsNonRoot, true, `${w.metadata.name}: runAsNonRoot`);
      assert.ok((pod.securityContext?.runAsUser ?? 0) > 0, `${w.metadata.name}: a non-root user id`);
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        const where = `${w.metadata.name}/${c.name}`;
        assert.match(c.image, /:[0-9][\w.-]*$/, `${where}: image pinned to a version, not ${c.image}`);
        for (const kind of ["requests", "limits"] as const)
          for (const r of ["cpu", "memory"]) assert.ok(c.resources?.[kind]?.[r], `${where}: resources.${kind}.${r}`);
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation false`);
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${where}: read-only root filesystem`);
        assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"], `${where}: capabilities dropped`);
      }
      for (const c of pod.containers) {
        assert.ok(c.livenessProbe, `${w.metadata.name}/${c.name}: liveness probe`);
        assert.ok(c.readinessProbe, `${w.metadata.name}/${c.name}: readiness probe`);
      }
    }
  });

  it("keeps every volume on a Portworx StorageClass, the databases with three replicas", () => {
    const classes = new Map(
      objects
        .filter((o) => o.kind === "StorageClass")
        .map((o) => [o.metadata.name, o as unknown as { provisioner: string; parameters: Record<string, string> }]),
    );
    for (const c of classes.values()) assert.equal(c.provisioner, "pxd.portworx.com");
    const claims = [
      ...objects
        .filter((o) => o.kind === "PersistentVolumeClaim")
        .map((o) => ({
          name: o.metadata.name,
          storageClassName: (o.spec as { storageClassName: string }).storageClassName,
        })),
      ...workloads.flatMap((w) =>
        (w.spec.volumeClaimTemplates ?? []).map((t) => ({
          name: `${w.metadata.name} template`,
          storageClassName: t.spec.storageClassName,
        })),
      ),
    ];
    assert.ok(claims.length >= 3);
    for (const claim of claims)
      assert.ok(
        classes.has(claim.storageClassName),
        `${claim.name}: storage class ${claim.storageClassName} is one of ours`,
      );
    for (const name of ["influxdb", "nats"]) {
      const database = workloads.find((w) => w.metadata.name === name);
      assert.equal(
        classes.get(database?.spec.volumeClaimTemplates?.[0]?.spec.storageClassName ?? "")?.parameters.repl,
        "3",
        `${name} on three replicas`,
      );
    }
  });

  it("denies by default in every namespace and covers every workload with a policy of its own", () => {
    for (const namespace of ["fanwatch", "openfaas", "openfaas-fn"]) {
      const deny = policies.find(
        (p) =>
          p.metadata.namespace === namespace &&
          Object.keys(p.spec.podSelector.matchLabels ?? {}).length === 0 &&
          p.spec.ingress === undefined &&
          p.spec.egress === undefined,
      );
      assert.deepEqual(deny?.spec.policyTypes.sort(), ["Egress", "Ingress"], `default deny in ${namespace}`);
    }
    for (const w of workloads) {
      const labels = w.spec.template.metadata.labels;
      const own = policies.filter(
        (p) =>
          p.metadata.namespace === w.metadata.namespace &&
          Object.keys(p.spec.podSelector.matchLabels ?? {}).length > 0 &&
          Object.entries(p.spec.podSelector.matchLabels ?? {}).every(([k, v]) => labels[k] === v),
      );
      assert.ok(own.length > 0, `${w.metadata.name} has a policy of its own`);
    }
  });

  it("allows exactly the flows of the data-flow diagram", () => {
    const pod = (namespace: string, labels: Record<string, string>): Peer => ({ namespace, labels });
    const fanwatch = (name: string) =>
      pod("fanwatch", { "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "fanwatch" });
    const [mosquitto, connector, telegraf, influxdb, grafana, simulator, fanwatchNats] = [
      "mosquitto",
      "mqtt-connector",
      "telegraf",
      "influxdb",
      "grafana",
      "fan-simulator",
      "nats",
    ].map(fanwatch) as [Peer, Peer, Peer, Peer, Peer, Peer, Peer];
    const predict = pod("openfaas-fn", { faas_function: "predict" });
    const health = pod("openfaas-fn", { faas_function: "health" });
    const natsAdmin = pod("fanwatch", { "fanwatch.io/nats-admin": "true" });
    const gateway = pod("openfaas", { app: "gateway" });
    const queueWorker = pod("openfaas", { app: "queue-worker" });
    const dns = pod("kube-system", { "k8s-app": "kube-dns" });
    const nats = pod("openfaas", { app: "nats" });
    const allowed: Array<[string, Peer, Peer, number]> = [
      ["fans → Mosquitto's TLS listener", OUTSIDE, mosquitto, 8883],
      ["simulated fans → Mosquitto", simulator, mosquitto, 1883],
      ["connector → Mosquitto", connector, mosquitto, 1883],
      ["connector → gateway", connector, gateway, 8080],
      ["gateway → functions", gateway, predict, 8080],
      ["queue-worker → functions (async invocations)", queueWorker, predict, 8080],
      ["functions → gateway (predict → score)", predict, gateway, 8080],
      ["functions → Mosquitto", predict, mosquitto, 1883],
      ["gateway → health", gateway, health, 8080],
      ["health → Mosquitto (fan/alarm, dead letters)", health, mosquitto, 1883],
      ["health → NATS (its state)", health, fanwatchNats, 4222],
      ["an admin's pod → NATS", natsAdmin, fanwatchNats, 4222],
      ["Telegraf → Mosquitto", telegraf, mosquitto, 1883],
      ["Telegraf → InfluxDB", telegraf, influxdb, 8086],
      ["Grafana → InfluxDB", grafana, influxdb, 8086],
      ["users → Grafana", OUTSIDE, grafana, 3000],
    ];
    for (const [what, from, to, port] of allowed) assert.ok(allows(policies, from, to, port), `${what} is allowed`);
    for (const from of [mosquitto, connector, telegraf, influxdb, grafana, predict, health, fanwatchNats, gateway])
      assert.ok(allows(policies, from, dns, 53, "UDP"), "DNS is allowed");
    const denied: Array<[string, Peer, Peer, number]> = [
      ["outside → InfluxDB", OUTSIDE, influxdb, 8086],
      ["Grafana → Mosquitto", grafana, mosquitto, 1883],
      ["functions → InfluxDB", predict, influxdb, 8086],
      ["simulated fans → InfluxDB", simulator, influxdb, 8086],
      ["connector → InfluxDB", connector, influxdb, 8086],
      ["outside → functions", OUTSIDE, predict, 8080],
      ["a forged invocation: outside → gateway", OUTSIDE, gateway, 8080],
      ["a forged invocation: simulated fans → gateway", simulator, gateway, 8080],
      ["a forged invocation: Grafana → gateway", grafana, gateway, 8080],
      ["Telegraf → gateway", telegraf, gateway, 8080],
      ["other OpenFaaS pods → functions", nats, predict, 8080],
      ["simulated fans → functions", simulator, predict, 8080],
      ["outside → Mosquitto's plain listener", OUTSIDE, mosquitto, 1883],
      ["Mosquitto → outside", mosquitto, OUTSIDE, 443],
      ["functions → outside", predict, OUTSIDE, 443],
      ["other functions → NATS", predict, fanwatchNats, 4222],
      ["connector → NATS", connector, fanwatchNats, 4222],
      ["Telegraf → NATS", telegraf, fanwatchNats, 4222],
      ["OpenFaaS's own NATS clients → our NATS", gateway, fanwatchNats, 4222],
      ["outside → NATS", OUTSIDE, fanwatchNats, 4222],
      ["NATS monitoring from the cluster", health, fanwatchNats, 8222],
      ["NATS → outside", fanwatchNats, OUTSIDE, 443],
      ["health → InfluxDB", health, influxdb, 8086],
    ];
    for (const [what, from, to, port] of denied) assert.ok(!allows(policies, from, to, port), `${what} is denied`);
  });
});

describe("deploy/faasd", () => {
  it("adds Mosquitto, the connector, NATS, Telegraf, InfluxDB and Grafana with pinned images", async () => {
    const compose = parse(await readFile(join(REPO_ROOT, "deploy/faasd/docker-compose.fanwatch.yaml"), "utf8")) as {
      services: Record<string, { image: string; user?: string }>;
    };
    assert.deepEqual(Object.keys(compose.services).sort(), [
      "fanwatch-nats",
      "grafana",
      "influxdb",
      "mosquitto",
      "mqtt-connector",
      "telegraf",
    ]);
    for (const [name, service] of Object.entries(compose.services)) {
      assert.match(service.image, /:[0-9][\w.-]*$/, `${name}: pinned image`);
      assert.match(service.user ?? "", /^[1-9]\d*$/, `${name}: runs as a non-root user`);
    }
  });
});
