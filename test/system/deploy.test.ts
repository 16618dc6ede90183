import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as apps from "kubernetes-models/apps/v1";
import * as batch from "kubernetes-models/batch/v1";
import * as networking from "kubernetes-models/networking.k8s.io/v1";
import * as policy from "kubernetes-models/policy/v1";
import * as rbac from "kubernetes-models/rbac.authorization.k8s.io/v1";
import * as storage from "kubernetes-models/storage.k8s.io/v1";
import * as core from "kubernetes-models/v1";
import { parse } from "yaml";
import { z } from "zod";
import { render, type K8sObject } from "../support/k3s-render.js";
import { allows, type NetworkPolicy, type Peer } from "../support/network-policy.js";
import { REPO_ROOT } from "../support/paths.js";

// No cluster runs here: what can be proved offline is proved on what `kubectl kustomize` renders.
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: Array<{ name?: string; containerPort: number; protocol?: string; hostPort?: number }>;
  env?: Array<{ name: string; value?: string }>;
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string }>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsNonRoot?: boolean;
    runAsUser?: number;
    privileged?: boolean;
    seccompProfile?: { type: string };
    capabilities?: { drop?: string[]; add?: string[] };
  };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface PodSpec {
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  shareProcessNamespace?: boolean;
  affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: unknown } };
  topologySpreadConstraints?: Array<{ topologyKey: string; labelSelector: { matchLabels: Record<string, string> } }>;
  containers: Container[];
  initContainers?: Container[];
  volumes?: Array<{
    name: string;
    persistentVolumeClaim?: { claimName: string };
    secret?: { secretName: string; optional?: boolean };
    configMap?: { name: string };
    emptyDir?: unknown;
  }>;
}
interface Workload extends K8sObject {
  spec: {
    replicas?: number;
    serviceName?: string;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: Array<{ metadata: { name: string }; spec: { storageClassName: string } }>;
  };
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
  "policy/v1/PodDisruptionBudget": policy.PodDisruptionBudget,
  "batch/v1/CronJob": batch.CronJob,
  "batch/v1/Job": batch.Job,
  "v1/ServiceAccount": core.ServiceAccount,
  "rbac.authorization.k8s.io/v1/Role": rbac.Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": rbac.RoleBinding,
  "rbac.authorization.k8s.io/v1/ClusterRole": rbac.ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": rbac.ClusterRoleBinding,
};

/** The sizes (docs/deploy.md, "Sizes"): each overlay over deploy/k3s/base, and what it runs. */
const SIZES = {
  "one-node": { replicas: { "mqtt-connector": 1, notifier: 1, alertmanager: 1 }, storage: "local-path" },
  "two-nodes": { replicas: { "mqtt-connector": 2, notifier: 2, alertmanager: 2 }, storage: "local-path" },
  "three-nodes": { replicas: { "mqtt-connector": 2, notifier: 2, alertmanager: 2 }, storage: "portworx" },
} as const;
type Size = keyof typeof SIZES;

/** One suite per size: the same checks over what each overlay renders (with the simulator). */
function forEverySize(title: string, suite: (size: Size) => void): void {
  for (const size of Object.keys(SIZES) as Size[]) describe(`deploy/k3s/${size} ${title}`, () => suite(size));
}

/** Every pod template an object carries (Deployment, StatefulSet, DaemonSet, Job, CronJob), with where it is. */
function podTemplates(objects: K8sObject[]): Array<{ where: string; namespace: string; pod: PodSpec }> {
  return objects.flatMap((o) => {
    const spec = o.spec as
      | {
          template?: { spec: PodSpec };
          jobTemplate?: { spec: { template: { spec: PodSpec } } };
        }
      | undefined;
    const pod = spec?.template?.spec ?? spec?.jobTemplate?.spec.template.spec;
    return pod === undefined
      ? []
      : [{ where: `${o.kind} ${o.metadata.name}`, namespace: o.metadata.namespace ?? "default", pod }];
  });
}

const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

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

forEverySize("(rendered with kubectl kustomize, checked offline)", (size) => {
  let objects: K8sObject[];
  let workloads: Workload[];
  let policies: NetworkPolicy[];
  before(() => {
    objects = [...render(`deploy/k3s/${size}`), ...render("deploy/k3s/simulator")];
    workloads = objects.filter((o): o is Workload => o.kind === "Deployment" || o.kind === "StatefulSet");
    policies = objects.filter((o) => o.kind === "NetworkPolicy") as unknown as NetworkPolicy[];
  });

  it("renders every part of the system", () => {
    const names = workloads.map((w) => w.metadata.name).sort();
    assert.deepEqual(names, [
      "alertmanager",
      "fan-simulator",
      "grafana",
      "influxdb",
      "mosquitto",
      "mqtt-connector",
      "nats",
      "notifier",
      "page",
      "prometheus",
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

  it("opens node ports only for the fans' TLS listener, Grafana and the page", () => {
    const services = objects.filter((o) => o.kind === "Service") as unknown as Array<
      K8sObject & { spec: { type?: string; ports: Array<{ port: number; nodePort?: number }> } }
    >;
    const exposed = services
      .filter((s) => s.spec.type === "NodePort" || s.spec.type === "LoadBalancer")
      .map((s) => `${s.metadata.name}:${s.spec.ports.map((p) => p.port).join(",")}`);
    assert.deepEqual(exposed.sort(), ["grafana:3000", "mosquitto-fans:8883", "page:8080"]);
  });

  it("gives Mosquitto every file its shipped configuration names: TLS from a Secret, credentials written by broker-auth from the registry, kept current by its sidecar", async () => {
    const conf = await readFile(join(REPO_ROOT, "deploy/mosquitto/mosquitto.conf"), "utf8");
    const setting = (key: string) => conf.match(new RegExp(`^${key} (.+)$`, "m"))?.[1];
    const broker = workloads.find((w) => w.metadata.name === "mosquitto")?.spec.template.spec;
    assert.ok(broker);
    const container = broker.containers.find((c) => c.name === "mosquitto");
    assert.ok(container);
    const mountIn = (c: Container | undefined, path: string) =>
      (c?.volumeMounts ?? []).find(
        (m) => path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, "")}/`),
      );
    const mounted = (path: string) => mountIn(container, path);
    const volume = (name: string | undefined) => broker.volumes?.find((v) => v.name === name);
    for (const key of [
      "password_file",
      "acl_file",
      "plugin_opt_config_file",
      "pid_file",
      "certfile",
      "keyfile",
      "persistence_location",
    ])
      assert.ok(mounted(setting(key) ?? `(no ${key})`), `${key} ${setting(key)} is mounted`);
    assert.equal(
      setting("plugin"),
      "/usr/lib/mosquitto_dynamic_security.so",
      "the eclipse-mosquitto image's plugin path",
    );
    assert.match(container.image, /^eclipse-mosquitto:2\.0\./);
    assert.equal(volume(mounted(setting("certfile") ?? "")?.name)?.secret?.secretName, "mosquitto-tls");
    const authVolume = mounted(setting("password_file") ?? "")?.name;
    assert.equal(volume(authVolume)?.emptyDir !== undefined, true, "the password file is written at start, not stored");
    for (const key of ["acl_file", "plugin_opt_config_file"])
      assert.equal(mounted(setting(key) ?? "")?.name, authVolume, `${key} is beside the password file`);
    const dirOf = (path: string | undefined) => path?.replace(/\/[^/]+$/, "");
    const flag = (c: Container | undefined, name: string) => c?.args?.[(c.args.indexOf(name) ?? -2) + 1];
    // The init container writes them before the broker starts; the sidecar rewrites and signals.
    const init = broker.initContainers?.find((c) => c.args?.[0] === "broker-auth");
    assert.ok(init, "an init container runs fanwatch broker-auth");
    assert.equal(init.args?.includes("--watch"), false);
    const sidecar = broker.containers.find((c) => c.args?.[0] === "broker-auth" && c.args.includes("--watch"));
    assert.ok(sidecar, "a sidecar runs fanwatch broker-auth --watch");
    for (const c of [init, sidecar]) {
      assert.equal(mountIn(c, flag(c, "--out") ?? "")?.name, authVolume, `${c.name} writes where the broker reads`);
      assert.equal(dirOf(setting("password_file")), flag(c, "--out"));
      assert.equal(
        c.env?.find((e) => e.name === "ALLOW_UNBOUND_FANS")?.value,
        "false",
        `${c.name}: fans bound to their topic`,
      );
      assert.match(c.env?.find((e) => e.name === "NATS_URL")?.value ?? "", /^nats:\/\/nats\.fanwatch:4222$/);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${c.name}: read-only root filesystem`);
    }
    // The copy for a start without NATS lives on the broker's own volume, which outlives the pod.
    for (const c of [init, sidecar])
      assert.equal(
        mountIn(c, flag(c, "--fallback") ?? "(no --fallback)")?.name,
        mounted(setting("persistence_location") ?? "")?.name,
        `${c.name}: --fallback on the broker's volume`,
      );
    assert.equal(flag(sidecar, "--pid-file"), setting("pid_file"));
    assert.equal(mountIn(sidecar, setting("pid_file") ?? "")?.name, mounted(setting("pid_file") ?? "")?.name);
    assert.equal(broker.shareProcessNamespace, true, "the sidecar can signal the broker");
    assert.equal(broker.securityContext?.runAsNonRoot, true);
    assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
    const secrets = (broker.volumes ?? []).flatMap((v) => (v.secret === undefined ? [] : [v.secret.secretName]));
    for (const secret of ["mosquitto-users", "mosquitto-acl", "mosquitto-tls"])
      assert.ok(
        secrets.some((s) => s === secret || s.startsWith(`${secret}-`)),
        `the Secret ${secret} is mounted`,
      );
    assert.equal(secrets.includes("mosquitto-fans"), false, "fans come from the registry");
    const config = objects.find(
      (o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("mosquitto-config"),
    ) as unknown as { data: Record<string, string> };
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
    // fan/messages first, as before per-fan topics: its session keeps its client id (intake.ts).
    assert.deepEqual(connector?.env?.find((e) => e.name === "topic")?.value?.split(","), [
      "fan/messages",
      "fan/anomaly",
      "fan/messages/+",
    ]);
    const env = (name: string) => connector?.env?.find((e) => e.name === name)?.value;
    assert.equal(env("NATS_URL"), "nats://nats.fanwatch:4222", "the connector checks readings against the registry");
    assert.equal(env("ALLOW_UNBOUND_FANS"), "false", "in a cluster a fan publishes only on its own topic");
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
    assert.ok(
      rules("page").length > 0 && rules("page").every((r) => r.startsWith("topic read ")),
      "the page only reads",
    );
  });

  it("runs the page with sign-in: the users file and the user secret from Secrets health shares, health through the gateway", async () => {
    const page = workloads.find((w) => w.metadata.name === "page");
    const [container] = page?.spec.template.spec.containers ?? [];
    assert.ok(page && container);
    assert.deepEqual(container.args, ["page"]);
    const env = new Map((container.env ?? []).map((e) => [e.name, e.value ?? ""]));
    assert.equal(env.get("PAGE_SIGN_IN"), "local");
    const secretOf = (file: string) => {
      const mount = container.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
      return page.spec.template.spec.volumes?.find((v) => v.name === mount?.name)?.secret?.secretName;
    };
    assert.equal(secretOf(env.get("PAGE_USERS_FILE") ?? ""), "fanwatch-page-users");
    assert.equal(secretOf(env.get("PAGE_USER_SECRET_FILE") ?? ""), "fanwatch-page-user-secret");
    // https on the plant network: the certificate from its kubernetes.io/tls Secret, cookies Secure.
    assert.equal(secretOf(env.get("PAGE_TLS_CERT_FILE") ?? ""), "fanwatch-page-tls");
    assert.equal(secretOf(env.get("PAGE_TLS_KEY_FILE") ?? ""), "fanwatch-page-tls");
    assert.equal(env.get("PAGE_COOKIE_SECURE"), "true");
    assert.equal(env.has("PAGE_ALLOW_PLAIN_HTTP"), false);
    assert.equal(new URL(env.get("HEALTH_URL") ?? "").host, "gateway.openfaas:8080");
    const stack = parse(await readFile(join(REPO_ROOT, "stack.yml"), "utf8")) as {
      functions: Record<string, { secrets?: string[] }>;
    };
    assert.ok(stack.functions.health?.secrets?.includes("fanwatch-page-user-secret"), "health holds the same secret");
    const service = objects.find((o) => o.kind === "Service" && o.metadata.name === "page") as
      (K8sObject & { spec: { externalTrafficPolicy?: string } }) | undefined;
    assert.equal(service?.spec.externalTrafficPolicy, "Local", "the page sees the client's address");
  });

  it("pins every image and gives every container resources, probes and a locked-down security context", () => {
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      // Prometheus alone needs its token: it lists pods and nodes and reads the kubelets' metrics.
      const token = w.metadata.name === "prometheus";
      assert.equal(pod.automountServiceAccountToken, token, `${w.metadata.name}: ${token ? "its" : "no"} API token`);
      assert.equal(pod.securityContext?.runAsNonRoot, true, `${w.metadata.name}: runAsNonRoot`);
      assert.ok((pod.securityContext?.runAsUser ?? 0) > 0, `${w.metadata.name}: a non-root user id`);
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        const where = `${w.metadata.name}/${c.name}`;
        // Prometheus's images are tagged v0.25.0.
        assert.match(
          c.image,
          /:v?[0-9][\w.-]*(@sha256:[0-9a-f]{64})?$/,
          `${where}: image pinned to a version, not ${c.image}`,
        );
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

  it("claims only StorageClasses this size defines, on the storage the size calls for", () => {
    const classes = new Map(
      objects
        .filter((o) => o.kind === "StorageClass")
        .map((o) => [
          o.metadata.name,
          o as unknown as {
            provisioner: string;
            parameters?: Record<string, string>;
            reclaimPolicy?: string;
            volumeBindingMode?: string;
          },
        ]),
    );
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
        `${claim.name}: StorageClass ${claim.storageClassName} is defined`,
      );
    const classOf = (name: string) =>
      classes.get(
        workloads.find((w) => w.metadata.name === name)?.spec.volumeClaimTemplates?.[0]?.spec.storageClassName ?? "",
      );
    for (const c of classes.values()) assert.equal(c.reclaimPolicy, "Retain", "deleting a claim keeps the data");
    if (SIZES[size].storage === "local-path") {
      // K3s's built-in provisioner: a directory on one node, made once the scheduler picked that node.
      for (const c of classes.values()) {
        assert.equal(c.provisioner, "rancher.io/local-path");
        assert.equal(c.volumeBindingMode, "WaitForFirstConsumer");
      }
    } else {
      for (const c of classes.values()) assert.equal(c.provisioner, "pxd.portworx.com");
      for (const name of ["influxdb", "nats"])
        assert.equal(classOf(name)?.parameters?.repl, "3", `${name} on three replicas`);
      assert.equal(classOf("alertmanager")?.parameters?.repl, "2", "Alertmanager's volumes on two");
    }
  });

  it("keeps every pod that claims a volume on the K3s server when there are two nodes, and anywhere otherwise", () => {
    // local-path binds a claim to the node its first pod ran on. Alertmanager is the exception: a
    // replica on each node, each with its own copy of the silences (docs/deploy.md, "Sizes").
    const claiming = objects.flatMap((o) => {
      const claims = [
        ...((o.spec as Partial<Workload["spec"]> | undefined)?.volumeClaimTemplates ?? []).map((c) => c.metadata.name),
        ...podTemplates([o]).flatMap(({ pod }) =>
          (pod.volumes ?? []).flatMap((v) => v.persistentVolumeClaim?.claimName ?? []),
        ),
      ];
      return claims.length === 0 || o.metadata.name === "alertmanager" ? [] : podTemplates([o]);
    });
    assert.deepEqual(
      claiming.map((p) => p.where).sort(),
      [
        "CronJob influxdb-backup",
        "CronJob nats-backup",
        "Deployment grafana",
        "Deployment mosquitto",
        "StatefulSet influxdb",
        "StatefulSet nats",
        "StatefulSet prometheus",
      ],
      "what holds data (the influxdb-setup Job claims nothing)",
    );
    for (const { where, pod } of claiming) {
      const required = JSON.stringify(pod.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? {});
      assert.equal(
        required.includes('"key":"node-role.kubernetes.io/control-plane","operator":"In","values":["true"]'),
        size === "two-nodes",
        `${where}: pinned to the server on two nodes only`,
      );
    }
  });

  it("runs as many replicas of the connector, the notifier and Alertmanager as the size calls for, spread over the nodes", () => {
    for (const [name, replicas] of Object.entries(SIZES[size].replicas)) {
      const w = workloads.find((x) => x.metadata.name === name);
      assert.equal(w?.spec.replicas, replicas, `${name}: ${replicas}`);
      const spread = w.spec.template.spec.topologySpreadConstraints ?? [];
      if (replicas > 1)
        assert.ok(
          spread.some(
            (c) =>
              c.topologyKey === "kubernetes.io/hostname" &&
              matches(c.labelSelector.matchLabels, w.spec.template.metadata.labels),
          ),
          `${name}: spread over the nodes`,
        );
    }
  });

  it("gives every replicated workload a disruption budget that selects its pods only and never blocks a drain", () => {
    const budgets = objects.filter((o) => o.kind === "PodDisruptionBudget") as unknown as Array<
      K8sObject & {
        spec: {
          maxUnavailable?: number;
          minAvailable?: number;
          unhealthyPodEvictionPolicy?: string;
          selector: { matchLabels: Record<string, string> };
        };
      }
    >;
    for (const budget of budgets) {
      const selected = workloads.filter(
        (w) =>
          w.metadata.namespace === budget.metadata.namespace &&
          matches(budget.spec.selector.matchLabels, w.spec.template.metadata.labels),
      );
      assert.equal(selected.length, 1, `PodDisruptionBudget ${budget.metadata.name} selects one workload's pods`);
      // One replica may always go: the only node's drain goes through whatever the size.
      assert.equal(budget.spec.maxUnavailable, 1, `${budget.metadata.name}: maxUnavailable 1`);
      assert.equal(budget.spec.minAvailable, undefined);
      assert.equal(budget.spec.unhealthyPodEvictionPolicy, "AlwaysAllow", "a broken pod does not hold a drain up");
    }
    for (const name of Object.keys(SIZES[size].replicas))
      assert.ok(
        budgets.some((b) => b.metadata.name === name),
        `${name} has a budget`,
      );
  });

  it("governs every StatefulSet by a headless Service that selects its pods", () => {
    for (const set of workloads.filter((w) => w.kind === "StatefulSet")) {
      const service = objects.find(
        (o) =>
          o.kind === "Service" &&
          o.metadata.name === set.spec.serviceName &&
          o.metadata.namespace === set.metadata.namespace,
      ) as (K8sObject & { spec: { clusterIP?: string; selector: Record<string, string> } }) | undefined;
      assert.equal(
        service?.spec.clusterIP,
        "None",
        `${set.metadata.name}: serviceName ${set.spec.serviceName} is headless`,
      );
      assert.ok(Object.keys(service.spec.selector).length > 0);
      assert.ok(
        matches(service.spec.selector, set.spec.template.metadata.labels),
        `${service.metadata.name} selects the pods`,
      );
    }
  });

  it("labels the namespaces for Pod Security Admission, and every fanwatch pod meets the restricted profile", () => {
    const labels = (name: string) =>
      (
        objects.find((o) => o.kind === "Namespace" && o.metadata.name === name)?.metadata as {
          labels?: Record<string, string>;
        }
      )?.labels ?? {};
    const expected = {
      fanwatch: "restricted",
      "fanwatch-monitoring": "restricted",
      openfaas: "baseline",
      "openfaas-fn": "baseline",
    };
    for (const [namespace, enforce] of Object.entries(expected)) {
      assert.equal(
        labels(namespace)["pod-security.kubernetes.io/enforce"],
        enforce,
        `${namespace} enforces ${enforce}`,
      );
      for (const mode of ["warn", "audit"])
        assert.equal(labels(namespace)[`pod-security.kubernetes.io/${mode}`], "restricted", `${namespace}: ${mode}`);
    }
    // The restricted profile's rules (kubernetes.io/docs/concepts/security/pod-security-standards).
    const allowedVolumes = new Set([
      "name",
      "configMap",
      "csi",
      "downwardAPI",
      "emptyDir",
      "ephemeral",
      "persistentVolumeClaim",
      "projected",
      "secret",
    ]);
    const restricted = podTemplates(objects).filter(
      (p) => expected[p.namespace as keyof typeof expected] === "restricted",
    );
    assert.ok(restricted.length >= 9);
    assert.ok(
      restricted.some((p) => p.namespace === "fanwatch-monitoring"),
      "Prometheus's pod is checked",
    );
    for (const { where, pod } of restricted) {
      for (const host of ["hostNetwork", "hostPID", "hostIPC"] as const)
        assert.notEqual(pod[host], true, `${where}: ${host}`);
      for (const volume of pod.volumes ?? [])
        for (const key of Object.keys(volume)) assert.ok(allowedVolumes.has(key), `${where}: a ${key} volume`);
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        const context = c.securityContext;
        const at = `${where}/${c.name}`;
        assert.ok(context?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, `${at}: runAsNonRoot`);
        assert.notEqual(context?.runAsUser ?? pod.securityContext?.runAsUser, 0, `${at}: not uid 0`);
        assert.ok(
          ["RuntimeDefault", "Localhost"].includes(
            context?.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type ?? "",
          ),
          `${at}: a seccomp profile`,
        );
        assert.equal(context?.allowPrivilegeEscalation, false, `${at}: allowPrivilegeEscalation false`);
        assert.notEqual(context?.privileged, true, `${at}: not privileged`);
        assert.ok(context?.capabilities?.drop?.includes("ALL"), `${at}: every capability dropped`);
        for (const added of context?.capabilities?.add ?? [])
          assert.equal(added, "NET_BIND_SERVICE", `${at}: adds ${added}`);
        for (const port of c.ports ?? []) assert.equal(port.hostPort, undefined, `${at}: no hostPort`);
      }
    }
  });

  it("runs Alertmanager on the shipped configuration, its replicas clustered, each peer named by its stable address", async () => {
    const am = workloads.find((w) => w.metadata.name === "alertmanager");
    assert.equal(am?.kind, "StatefulSet");
    assert.equal(am.spec.replicas, SIZES[size].replicas.alertmanager);
    const headless = objects.find((o) => o.kind === "Service" && o.metadata.name === am.spec.serviceName) as
      | (K8sObject & {
          spec: {
            clusterIP?: string;
            publishNotReadyAddresses?: boolean;
            selector: Record<string, string>;
            ports: Array<{ port: number; protocol?: string }>;
          };
        })
      | undefined;
    assert.equal(headless?.spec.clusterIP, "None", "a headless Service governs the StatefulSet");
    assert.equal(headless.spec.publishNotReadyAddresses, true, "peers find each other before they are ready");
    const labels = am.spec.template.metadata.labels;
    for (const [k, v] of Object.entries({ ...headless.spec.selector, ...am.spec.selector.matchLabels }))
      assert.equal(labels[k], v, `selector ${k}=${v} matches the pods`);
    const [container] = am.spec.template.spec.containers;
    assert.ok(container);
    const args = container.args ?? [];
    const flag = (name: string) => args.filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
    const peers = Array.from(
      { length: am.spec.replicas },
      (_, i) => `${am.metadata.name}-${i}.${am.spec.serviceName}.${am.metadata.namespace}.svc:9094`,
    );
    if (am.spec.replicas === 1) {
      // Alone: an empty listen address turns the cluster off (it would otherwise wait for peers).
      assert.deepEqual(flag("cluster.peer"), [], "no peers");
      assert.deepEqual(flag("cluster.listen-address"), [""], "no cluster");
    } else {
      assert.deepEqual(flag("cluster.peer").sort(), peers, "every replica is a peer");
      assert.deepEqual(flag("cluster.listen-address"), ["0.0.0.0:9094"]);
    }
    assert.deepEqual(flag("web.listen-address"), [":9093"]);
    for (const [port, protocol] of [
      [9093, "TCP"],
      [9094, "TCP"],
      [9094, "UDP"],
    ] as const) {
      assert.ok(
        container.ports?.some((p) => p.containerPort === port && (p.protocol ?? "TCP") === protocol),
        `container port ${port}/${protocol}`,
      );
      if (port === 9094)
        assert.ok(
          headless.spec.ports.some((p) => p.port === port && (p.protocol ?? "TCP") === protocol),
          `the headless Service has ${port}/${protocol}`,
        );
    }
    const probe = (p: Probe | undefined) =>
      `${p?.httpGet?.path} on ${container.ports?.find((c) => c.name === p?.httpGet?.port)?.containerPort}`;
    assert.equal(probe(container.readinessProbe), "/-/ready on 9093");
    assert.equal(probe(container.livenessProbe), "/-/healthy on 9093");
    // Its files: the configuration from the shipped file, the secrets it names from the Secret, storage on a claim.
    const pod = am.spec.template.spec;
    const mountOf = (path: string) =>
      (container.volumeMounts ?? []).find(
        (m) => path.startsWith(`${m.mountPath.replace(/\/$/, "")}/`) || path === m.mountPath,
      );
    const volumeOf = (path: string) => pod.volumes?.find((v) => v.name === mountOf(path)?.name);
    const shippedText = await readFile(join(REPO_ROOT, "deploy/alertmanager/alertmanager.yml"), "utf8");
    const configFile = flag("config.file")[0] ?? "(no --config.file)";
    const configMap = objects.find(
      (o) => o.kind === "ConfigMap" && o.metadata.name === volumeOf(configFile)?.configMap?.name,
    ) as unknown as { data: Record<string, string> } | undefined;
    assert.equal(configMap?.data[configFile.split("/").pop() ?? ""], shippedText, "the shipped configuration");
    const shipped = parse(shippedText) as { global: Record<string, string>; receivers: unknown[] };
    const files = [
      shipped.global.smtp_auth_password_file ?? "(no smtp_auth_password_file)",
      ...JSON.stringify(shipped.receivers).matchAll(/"credentials_file":"([^"]+)"/g),
    ].map((f) => (typeof f === "string" ? f : (f[1] ?? "")));
    for (const file of files)
      assert.equal(volumeOf(file)?.secret?.secretName, "alertmanager-secrets", `${file} comes from the Secret`);
    const storage = flag("storage.path")[0] ?? "(no --storage.path)";
    assert.ok(
      am.spec.volumeClaimTemplates?.some((t) => t.metadata.name === mountOf(storage)?.name),
      "its storage is a claim of its own per replica",
    );
  });

  it("points the notifier at NATS and at both Alertmanager replicas, with its probes and the webhook key from a Secret", () => {
    const notifier = workloads.find((w) => w.metadata.name === "notifier");
    const connector = workloads.find((w) => w.metadata.name === "mqtt-connector");
    const [container] = notifier?.spec.template.spec.containers ?? [];
    assert.ok(notifier && container);
    assert.equal(container.image, connector?.spec.template.spec.containers[0]?.image, "the service image");
    assert.deepEqual(container.args, ["notifier"]);
    assert.equal(notifier.spec.replicas, SIZES[size].replicas.notifier, "the replicas share the durable consumers");
    const env = new Map((container.env ?? []).map((e) => [e.name, e.value ?? ""]));
    const am = workloads.find((w) => w.metadata.name === "alertmanager");
    const amPort = am?.spec.template.spec.containers[0]?.ports?.find((p) => p.name === "web")?.containerPort;
    const urls = (env.get("ALERTMANAGER_URL") ?? "").split(",").map((u) => new URL(u));
    assert.deepEqual(
      urls.map((u) => `${u.hostname}:${u.port}`),
      Array.from(
        { length: am?.spec.replicas ?? 0 },
        (_, i) => `alertmanager-${i}.${am?.spec.serviceName}.fanwatch.svc:${amPort}`,
      ),
      "every replica by its stable name",
    );
    const nats = new URL(env.get("NATS_URL") ?? "");
    assert.deepEqual([nats.hostname, nats.port], ["nats.fanwatch", "4222"]);
    assert.ok(env.has("SITE") && env.has("PAGE_URL"));
    const secretFile = env.get("NOTIFY_WEBHOOK_SECRET_FILE") ?? "";
    const mount = container.volumeMounts?.find((m) => secretFile.startsWith(`${m.mountPath}/`));
    const volume = notifier.spec.template.spec.volumes?.find((v) => v.name === mount?.name);
    assert.equal(volume?.secret?.secretName, "notify-webhook-secret");
    const port = Number(env.get("NOTIFIER_PORT"));
    const probe = (p: Probe | undefined) =>
      `${p?.httpGet?.path} on ${container.ports?.find((c) => c.name === p?.httpGet?.port)?.containerPort}`;
    assert.equal(probe(container.readinessProbe), `/healthz on ${port}`);
    assert.equal(probe(container.livenessProbe), `/livez on ${port}`);
  });
});

describe("deploy/k3s/release", () => {
  it("pins the images of every size and of the simulator (an offline site pulls them from its mirror)", async () => {
    for (const dir of [...Object.keys(SIZES), "simulator"]) {
      const text = await readFile(join(REPO_ROOT, "deploy/k3s", dir, "kustomization.yaml"), "utf8");
      const { components } = z.object({ components: z.array(z.string()).optional() }).parse(parse(text));
      assert.ok(components?.includes("../release"), `deploy/k3s/${dir} includes the release Component`);
    }
  });
});

describe("deploy/faasd", () => {
  it("adds Mosquitto, the connector, NATS, the notifier, the page, Alertmanager, Telegraf, InfluxDB (and its setup) and Grafana with pinned images", async () => {
    const compose = parse(await readFile(join(REPO_ROOT, "deploy/faasd/docker-compose.fanwatch.yaml"), "utf8")) as {
      services: Record<string, { image: string; user?: string }>;
    };
    assert.deepEqual(Object.keys(compose.services).sort(), [
      "alertmanager",
      "fanwatch-nats",
      "grafana",
      "influxdb",
      "influxdb-setup",
      "mosquitto",
      "mqtt-connector",
      "notifier",
      "page",
      "telegraf",
    ]);
    for (const [name, service] of Object.entries(compose.services)) {
      assert.match(service.image, /:v?[0-9][\w.-]*(@sha256:[0-9a-f]{64})?$/, `${name}: pinned image`);
      assert.match(service.user ?? "", /^[1-9]\d*$/, `${name}: runs as a non-root user`);
    }
  });

  it("runs one Alertmanager without a cluster on the shipped configuration, and the notifier pointed at it and at NATS", async () => {
    const compose = parse(await readFile(join(REPO_ROOT, "deploy/faasd/docker-compose.fanwatch.yaml"), "utf8")) as {
      services: Record<
        string,
        { command?: string[]; environment?: string[]; volumes?: Array<{ source: string; target: string }> }
      >;
    };
    const am = compose.services.alertmanager;
    const command = am?.command ?? [];
    assert.ok(command.includes("--cluster.listen-address="), "clustering off");
    const configFile = command.find((c) => c.startsWith("--config.file="))?.slice("--config.file=".length);
    assert.match(am?.volumes?.find((v) => v.target === configFile)?.source ?? "", /alertmanager\.yml$/);
    const env = new Map((compose.services.notifier?.environment ?? []).map((e) => e.split("=", 2) as [string, string]));
    assert.equal(env.get("ALERTMANAGER_URL"), "http://alertmanager:9093");
    assert.equal(env.get("NATS_URL"), "nats://fanwatch-nats:4222");
  });

  it("mounts into the notifier only folders the documented setup makes, so that it starts without a webhook key", async () => {
    const compose = parse(await readFile(join(REPO_ROOT, "deploy/faasd/docker-compose.fanwatch.yaml"), "utf8")) as {
      services: Record<string, { environment?: string[]; volumes?: Array<{ source: string; target: string }> }>;
    };
    // faasd (containerd) does not start a service whose bind mount's source is missing.
    const setup = await readFile(join(REPO_ROOT, "docs/deploy.md"), "utf8");
    const mkdir = /sudo mkdir -p \/var\/lib\/faasd\/fanwatch\/\{([^}]+)\}/.exec(setup)?.[1];
    assert.ok(mkdir, "docs/deploy.md makes the folders under /var/lib/faasd/fanwatch/");
    const made = new Set(
      mkdir.split(",").flatMap((dir) => dir.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"))),
    );
    const notifier = compose.services.notifier;
    assert.ok((notifier?.volumes ?? []).length > 0);
    for (const service of [notifier, compose.services.page])
      for (const volume of service?.volumes ?? [])
        assert.ok(
          made.has(volume.source.replace(/^\.\/fanwatch\//, "")),
          `${volume.source} is a folder the setup makes`,
        );
    const page = compose.services.page;
    const pageEnv = new Map((page?.environment ?? []).map((e) => e.split("=", 2) as [string, string]));
    for (const tlsFile of [pageEnv.get("PAGE_TLS_CERT_FILE"), pageEnv.get("PAGE_TLS_KEY_FILE")])
      assert.ok(
        (page?.volumes ?? []).some((v) => (tlsFile ?? "").startsWith(`${v.target}/`)),
        "the page serves https from a mounted certificate",
      );
    assert.equal(pageEnv.get("PAGE_COOKIE_SECURE"), "true");
    const env = new Map((notifier?.environment ?? []).map((e) => e.split("=", 2) as [string, string]));
    const keyFile = env.get("NOTIFY_WEBHOOK_SECRET_FILE") ?? "";
    assert.ok(
      (notifier?.volumes ?? []).some((v) => keyFile.startsWith(`${v.target}/`)),
      "the webhook key is read from a mounted folder",
    );
  });
});
