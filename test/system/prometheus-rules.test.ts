import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as apps from "kubernetes-models/apps/v1";
import * as rbac from "kubernetes-models/rbac.authorization.k8s.io/v1";
import * as core from "kubernetes-models/v1";
import { Gauge, Registry } from "prom-client";
import { parse, parseAllDocuments } from "yaml";
import { eventually } from "../support/eventually.js";
import { startKubeletStandIn, type KubeletStandIn } from "../support/kubelet-stand-in.js";
import {
  prometheusDirForTest,
  SERVICE_ACCOUNT_TOKEN,
  type DiscoveredTargets,
  type DnsAnswers,
} from "../support/kubernetes-sd-stand-in.js";
import { REPO_ROOT } from "../support/paths.js";
import { finished } from "../support/process.js";
import { PROMETHEUS_DIR, promtool, removeDir, startPrometheus, type TestPrometheus } from "../support/prometheus.js";

// deploy/prometheus checked and exercised with Debian's promtool and prometheus 2.42 (the cluster
// runs 3.x: the files use nothing newer), and its alerts routed by the shipped Alertmanager
// configuration with Debian's amtool (docs/monitoring.md).

interface Rule {
  alert?: string;
  expr: string;
  labels?: Record<string, string>;
}
interface RuleTest {
  name: string;
  alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }>;
}

const RULE_FILES = readdirSync(join(PROMETHEUS_DIR, "rules")).filter((f) => f.endsWith(".yml"));
const rules: Rule[] = RULE_FILES.flatMap((f) =>
  (
    parse(readFileSync(join(PROMETHEUS_DIR, "rules", f), "utf8")) as { groups: Array<{ rules: Rule[] }> }
  ).groups.flatMap((g) => g.rules),
);
const alerts = rules.filter((r): r is Rule & { alert: string } => r.alert !== undefined);

/** Metrics the rules and the dashboard read that fanwatch's code does not define, and who does. */
const EXTERNAL_METRICS: Record<string, string> = {
  up: "Prometheus, per target",
  ALERTS: "Prometheus, per alert",
  prober_probe_total: "the kubelet's /metrics/probes",
  kubelet_volume_stats_available_bytes: "the kubelet's /metrics",
  kubelet_volume_stats_capacity_bytes: "the kubelet's /metrics",
  kubelet_volume_stats_used_bytes: "the kubelet's /metrics",
  container_cpu_usage_seconds_total: "cAdvisor in the kubelet",
  container_memory_working_set_bytes: "cAdvisor in the kubelet",
  container_spec_memory_limit_bytes: "cAdvisor in the kubelet",
  container_fs_usage_bytes: 'cAdvisor in the kubelet (id="/": the node\'s disks)',
  container_fs_limit_bytes: 'cAdvisor in the kubelet (id="/": the node\'s disks)',
  alertmanager_notifications_failed_total: "Alertmanager 0.25",
  alertmanager_notifications_total: "Alertmanager 0.25",
  gateway_function_invocation_total: "OpenFaaS CE's gateway",
  gateway_service_count: "OpenFaaS CE's gateway",
};

/** Every `name: "..."` of a prom-client metric in fanwatch's code (a histogram's series too). */
function definedMetrics(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory() && entry.name !== "node_modules" && entry.name !== "dist") walk(path);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts"))
        for (const m of readFileSync(path, "utf8").matchAll(/name: "([a-z_:][a-z0-9_:]*)"/g)) {
          const name = m[1] ?? "";
          for (const suffix of ["", "_bucket", "_sum", "_count"]) names.add(name + suffix);
        }
    }
  };
  for (const dir of ["connectors", "notifier", "functions", "templates", "page", "runtime", "lib"])
    walk(join(REPO_ROOT, dir));
  return names;
}

/** The metric names a PromQL expression selects (every selector here has a {...}). */
const selected = (expr: string) => [...expr.matchAll(/([a-zA-Z_:][\w:]*)\{/g)].map((m) => m[1] ?? "");

describe("deploy/prometheus with Debian's promtool", () => {
  let dir: string | undefined;
  before(async () => {
    ({ dir } = await prometheusDirForTest({}));
  });
  after(() => removeDir(dir));

  it("checks the configuration with its rule files: every job, relabelling and the alerting (Kubernetes discovery stood in for)", async () => {
    const checked = await promtool(["check", "config", "prometheus.yml"], dir);
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    assert.match(checked.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it("checks the rules", async () => {
    const checked = await promtool(["check", "rules", ...RULE_FILES.map((f) => `rules/${f}`)]);
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
  });

  it("fires each alert on the series of its test, with its labels and text, and not on those that must not (promtool test rules)", async () => {
    const tested = await promtool(["test", "rules", "tests/platform.test.yml"]);
    assert.equal(tested.code, 0, tested.stdout + tested.stderr);
    assert.match(tested.stdout, /SUCCESS/);
  });

  it("has a test where each alert fires, and names severity, scope, summary, description and runbook for each", () => {
    const tests = (
      parse(readFileSync(join(PROMETHEUS_DIR, "tests/platform.test.yml"), "utf8")) as { tests: RuleTest[] }
    ).tests;
    const fired = new Set(
      tests.flatMap((t) =>
        (t.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname),
      ),
    );
    assert.deepEqual([...fired].sort(), alerts.map((a) => a.alert).sort());
    const runbooks = readFileSync(join(REPO_ROOT, "docs/monitoring.md"), "utf8");
    for (const alert of alerts) {
      assert.equal(alert.labels?.scope, "platform", alert.alert);
      assert.match(alert.labels?.severity ?? "", /^(critical|warning)$/, alert.alert);
      const annotations = (alert as { annotations?: Record<string, string> }).annotations ?? {};
      assert.deepEqual(Object.keys(annotations).sort(), ["description", "runbook", "summary"], alert.alert);
      assert.match(annotations.runbook ?? "", new RegExp(`^docs/monitoring.md#${alert.alert.toLowerCase()}: `));
      assert.ok(runbooks.includes(`\n### ${alert.alert}\n`), `docs/monitoring.md has a section ${alert.alert}`);
    }
  });

  it("reads only metrics that exist: fanwatch's own as its code defines them, the others from the components named", () => {
    const defined = definedMetrics();
    const dashboard = readFileSync(join(REPO_ROOT, "deploy/grafana/dashboards/platform.json"), "utf8");
    const exprs = [
      ...rules.map((r) => r.expr),
      ...[...dashboard.matchAll(/"expr": "((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse(`"${m[1] ?? ""}"`) as string),
    ];
    assert.ok(exprs.length > rules.length, "the dashboard's queries are read too");
    const unknown = exprs.flatMap(selected).filter((name) => !defined.has(name) && !(name in EXTERNAL_METRICS));
    assert.deepEqual([...new Set(unknown)], []);
  });

  it("finds the Alertmanagers by the DNS of their headless Service in deploy/k3s/base/alertmanager.yaml, at its web port", () => {
    const config = parse(readFileSync(join(PROMETHEUS_DIR, "prometheus.yml"), "utf8")) as {
      alerting: { alertmanagers: Array<{ dns_sd_configs?: Array<{ names: string[]; type: string; port: number }> }> };
    };
    const sd = config.alerting.alertmanagers.flatMap((a) => a.dns_sd_configs ?? []);
    const service = parseAllDocuments(readFileSync(join(REPO_ROOT, "deploy/k3s/base/alertmanager.yaml"), "utf8"))
      .map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace: string }; spec: unknown })
      .find((o) => o.kind === "Service" && (o.spec as { clusterIP?: string }).clusterIP === "None") as
      | { metadata: { name: string; namespace: string }; spec: { ports: Array<{ name: string; port: number }> } }
      | undefined;
    assert.ok(service, "a headless Service for the Alertmanagers");
    const web = service.spec.ports.find((p) => p.name === "web")?.port;
    assert.deepEqual(sd, [
      {
        names: [`${service.metadata.name}.${service.metadata.namespace}.svc`],
        type: "A",
        port: web,
        refresh_interval: "30s",
      },
    ]);
    assert.equal(config.alerting.alertmanagers.length, 1, "no static list of replicas beside it");
  });
});

describe("deploy/k3s/base/prometheus.yaml (checked offline)", () => {
  interface K8sObject {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace?: string; labels?: Record<string, string> };
    [key: string]: unknown;
  }
  interface Container {
    image: string;
    args: string[];
    resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
    securityContext?: {
      allowPrivilegeEscalation?: boolean;
      readOnlyRootFilesystem?: boolean;
      capabilities?: { drop?: string[] };
    };
    readinessProbe?: { httpGet?: { path: string } };
    livenessProbe?: { httpGet?: { path: string } };
  }
  interface PodSpec {
    serviceAccountName: string;
    securityContext: { runAsNonRoot: boolean; runAsUser: number };
    containers: Container[];
    volumes: Array<{ configMap?: { items: Array<{ key: string; path: string }> } }>;
  }
  const MODELS: Record<string, new (data: never) => { validate(): void }> = {
    "v1/Namespace": core.Namespace,
    "v1/ServiceAccount": core.ServiceAccount,
    "v1/Service": core.Service,
    "apps/v1/StatefulSet": apps.StatefulSet,
    "rbac.authorization.k8s.io/v1/ClusterRole": rbac.ClusterRole,
    "rbac.authorization.k8s.io/v1/ClusterRoleBinding": rbac.ClusterRoleBinding,
    "rbac.authorization.k8s.io/v1/Role": rbac.Role,
    "rbac.authorization.k8s.io/v1/RoleBinding": rbac.RoleBinding,
  };
  const objects = parseAllDocuments(readFileSync(join(REPO_ROOT, "deploy/k3s/base/prometheus.yaml"), "utf8")).map(
    (d) => d.toJS() as K8sObject,
  );
  const statefulSet = objects.find((o) => o.kind === "StatefulSet") as
    (K8sObject & { spec: { template: { spec: PodSpec } } }) | undefined;
  const pod = statefulSet?.spec.template.spec;

  it("validates every object against the Kubernetes API schemas", () => {
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      assert.ok(Model !== undefined, `no schema for ${object.kind} ${object.metadata.name}`);
      assert.doesNotThrow(() => new Model(object as never).validate(), `${object.kind} ${object.metadata.name}`);
    }
  });

  it("runs in the namespace the NetworkPolicies admit, hardened like the other pods, its history bounded", () => {
    const namespace = objects.find((o) => o.kind === "Namespace");
    assert.equal(namespace?.metadata.labels?.["fanwatch.io/monitoring"], "true");
    assert.equal(pod?.securityContext.runAsNonRoot, true);
    assert.ok((pod?.securityContext.runAsUser ?? 0) > 0);
    const [container] = pod?.containers ?? [];
    assert.match(container?.image ?? "", /^quay\.io\/prometheus\/prometheus:v\d+\.\d+\.\d+$/);
    assert.deepEqual(container?.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    for (const kind of ["requests", "limits"] as const)
      for (const r of ["cpu", "memory"]) assert.ok(container?.resources?.[kind]?.[r], `resources.${kind}.${r}`);
    assert.equal(container?.readinessProbe?.httpGet?.path, "/-/ready");
    assert.equal(container?.livenessProbe?.httpGet?.path, "/-/healthy");
    assert.ok(container?.args.some((a) => /^--storage\.tsdb\.retention\.time=\d+d$/.test(a)));
    assert.ok(container?.args.some((a) => /^--storage\.tsdb\.retention\.size=\d+GB$/.test(a)));
  });

  it("links its alerts to the address docs/monitoring.md tells operators to port-forward", () => {
    const [container] = pod?.containers ?? [];
    const url = container?.args.find((a) => a.startsWith("--web.external-url="))?.split("=")[1];
    assert.equal(url, "http://localhost:9090/");
    const docs = readFileSync(join(REPO_ROOT, "docs/monitoring.md"), "utf8");
    assert.ok(docs.includes("kubectl -n fanwatch-monitoring port-forward svc/prometheus 9090"));
  });

  it("mounts every rule file of deploy/prometheus's ConfigMap where prometheus.yml's rule_files look", () => {
    const kustomization = parse(readFileSync(join(PROMETHEUS_DIR, "kustomization.yaml"), "utf8")) as {
      configMapGenerator: Array<{ files: string[] }>;
    };
    const files = kustomization.configMapGenerator.flatMap((g) => g.files).sort();
    assert.deepEqual(files, ["prometheus.yml", ...RULE_FILES.map((f) => `rules/${f}`)].sort());
    const items = pod?.volumes.flatMap((v) => v.configMap?.items ?? []) ?? [];
    assert.deepEqual(items.map((i) => i.path).sort(), files, "each key at its path in deploy/prometheus");
    for (const item of items) assert.equal(item.key, item.path.split("/").pop());
  });

  it("may list pods only in the namespaces it scrapes, and read nodes' metrics but not proxy to them", () => {
    const roles = objects.filter((o) => o.kind === "Role").map((o) => o.metadata.namespace);
    assert.deepEqual(roles.sort(), ["fanwatch", "openfaas", "openfaas-fn"]);
    const cluster = objects.find((o) => o.kind === "ClusterRole") as
      (K8sObject & { rules: Array<{ resources: string[] }> }) | undefined;
    const resources = cluster?.rules.flatMap((r) => r.resources).sort();
    assert.deepEqual(resources, ["nodes", "nodes/metrics"]);
    assert.equal(pod?.serviceAccountName, "prometheus");
  });
});

describe("the platform's alerts through the shipped Alertmanager configuration (amtool)", () => {
  const route = async (labels: Record<string, string>) => {
    const args = ["config", "routes", "test", "--config.file=deploy/alertmanager/alertmanager.yml"];
    const run = await finished(
      spawn("amtool", [...args, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)], { cwd: REPO_ROOT }),
    );
    assert.equal(run.code, 0, run.stderr);
    return run.stdout.trim();
  };

  it("routes every platform alert to the operators, whatever its severity", async () => {
    for (const alert of alerts)
      assert.equal(await route({ alertname: alert.alert, site: "local", ...alert.labels }), "operators", alert.alert);
  });

  it("still routes the fans' alarms to on-call and their warnings to maintenance", async () => {
    assert.equal(await route({ alertname: "FanAlarm", severity: "major", deviceID: "7", site: "local" }), "on-call");
    assert.equal(
      await route({ alertname: "FanWarning", severity: "minor", deviceID: "7", site: "local" }),
      "maintenance",
    );
  });
});

describe("Debian's Prometheus on the shipped configuration", () => {
  let prometheus: TestPrometheus | undefined;
  let dir: string | undefined;
  let server: Server | undefined;
  let kubelet: KubeletStandIn | undefined;
  let answer: ((dns: DnsAnswers) => Promise<void>) | undefined;
  // The Alertmanagers' headless Service as the cluster's DNS answers it on one node: one A record.
  const ALERTMANAGERS = "alertmanager-cluster.fanwatch.svc";

  before(async () => {
    // A node's cAdvisor as K3s's kubelet gives it (labels as in its /metrics/cadvisor): the root
    // cgroup's disks (a block device, tmpfs, a pod sandbox's shm), a container's own filesystem, the
    // memory of a fanwatch container, of kube-system's and of the root cgroup.
    const root = 'container="",id="/",image="",name="",namespace="",pod=""';
    const influx =
      'container="influxdb",id="/kubepods/pod1/c1",image="influxdb:1.8",name="c1",namespace="fanwatch",pod="influxdb-0"';
    const sandbox = "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/1d04/shm";
    kubelet = await startKubeletStandIn(SERVICE_ACCOUNT_TOKEN, {
      "/metrics/cadvisor": [
        "# TYPE container_fs_usage_bytes gauge",
        `container_fs_usage_bytes{${root},device="/dev/sda2"} 4.2e+10`,
        `container_fs_usage_bytes{${root},device="/dev/shm"} 0`,
        `container_fs_usage_bytes{${root},device="/run"} 5.046272e+06`,
        `container_fs_usage_bytes{${root},device="${sandbox}"} 0`,
        `container_fs_usage_bytes{${influx},device="/dev/sda2"} 98304`,
        "# TYPE container_fs_limit_bytes gauge",
        `container_fs_limit_bytes{${root},device="/dev/sda2"} 1e+11`,
        `container_fs_limit_bytes{${root},device="/dev/shm"} 6.7108864e+07`,
        `container_fs_limit_bytes{${root},device="/run"} 8.33e+08`,
        "# TYPE container_memory_working_set_bytes gauge",
        `container_memory_working_set_bytes{${influx}} 2e+08`,
        `container_memory_working_set_bytes{container="coredns",id="/kubepods/pod2/c2",image="coredns",name="c2",namespace="kube-system",pod="coredns-1"} 3e+07`,
        `container_memory_working_set_bytes{${root}} 3e+09`,
        "",
      ].join("\n"),
    });

    // One metrics endpoint for every stood-in pod: the pods' addresses all point at it.
    const registry = new Registry();
    new Gauge({ name: "connector_messages_pending", help: "stand-in", registers: [registry] }).set(3);
    server = createServer((req, res) => {
      if (req.url !== "/metrics" && req.url !== "/_/metrics") return void res.writeHead(404).end();
      void registry.metrics().then((text) => res.writeHead(200, { "content-type": registry.contentType }).end(text));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = String((server.address() as { port: number }).port);
    const pod = (name: string, fields: Record<string, string>) => ({
      __address__: `127.0.0.1:${port}`,
      __meta_kubernetes_pod_name: name,
      __meta_kubernetes_pod_ip: "127.0.0.1",
      __meta_kubernetes_pod_phase: "Running",
      ...fields,
    });
    const annotated = (scrape: string) => ({
      __meta_kubernetes_namespace: "fanwatch",
      __meta_kubernetes_pod_annotation_prometheus_io_scrape: scrape,
      __meta_kubernetes_pod_annotation_prometheus_io_port: port,
      __meta_kubernetes_pod_annotation_prometheus_io_path: "/metrics",
    });
    const targets: DiscoveredTargets = {
      "fanwatch-pods": [
        pod("mqtt-connector-a", {
          ...annotated("true"),
          __meta_kubernetes_pod_label_app_kubernetes_io_name: "mqtt-connector",
        }),
        pod("mosquitto-b", {
          __meta_kubernetes_namespace: "fanwatch",
          __meta_kubernetes_pod_label_app_kubernetes_io_name: "mosquitto",
        }),
        pod("backup-c", { ...annotated("true"), __meta_kubernetes_pod_phase: "Succeeded" }),
      ],
      cadvisor: [{ __address__: kubelet.address, __meta_kubernetes_node_name: "nuc-1" }],
      influxdb: [
        pod("influxdb-0", {
          __meta_kubernetes_namespace: "fanwatch",
          __meta_kubernetes_pod_label_app_kubernetes_io_name: "influxdb",
          __meta_kubernetes_pod_container_port_name: "http",
        }),
      ],
      functions: [
        pod("predict-d", {
          __meta_kubernetes_namespace: "openfaas-fn",
          __meta_kubernetes_pod_label_faas_function: "predict",
          __meta_kubernetes_pod_container_port_number: "8080",
          // What faas-netes puts on every function: read as the same meta label as prometheus.io/scrape.
          __meta_kubernetes_pod_annotation_prometheus_io_scrape: "false",
        }),
        pod("predict-d", {
          __meta_kubernetes_namespace: "openfaas-fn",
          __meta_kubernetes_pod_label_faas_function: "predict",
          __meta_kubernetes_pod_container_port_number: "8081",
        }),
      ],
    };
    ({ dir, answer } = await prometheusDirForTest(targets, "1s", { [ALERTMANAGERS]: ["10.42.0.7"] }));
    prometheus = await startPrometheus(dir);
  });

  after(async () => {
    await prometheus?.stop();
    server?.close();
    await kubelet?.close();
    await removeDir(dir);
  });

  interface Target {
    labels: Record<string, string>;
    scrapeUrl: string;
    health: string;
  }
  const active = async () =>
    (await prometheus!.get<{ activeTargets: Target[] }>("/api/v1/targets?state=active")).activeTargets;

  it("scrapes the annotated pods at their annotated port and path, labelled by namespace, pod and app; not the others", async () => {
    // The connector, InfluxDB, the function and the kubelet's cAdvisor.
    await eventually("the targets scraped", async () => (await active()).filter((t) => t.health === "up").length === 4);
    const targets = await active();
    const connector = targets.find((t) => t.labels.job === "fanwatch-pods");
    assert.deepEqual(
      { ...connector?.labels, instance: undefined },
      {
        job: "fanwatch-pods",
        namespace: "fanwatch",
        pod: "mqtt-connector-a",
        app: "mqtt-connector",
        instance: undefined,
      },
    );
    assert.match(connector?.scrapeUrl ?? "", /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.equal(targets.filter((t) => t.labels.job === "fanwatch-pods").length, 1, "no unannotated or finished pod");
    assert.equal(targets.find((t) => t.labels.job === "influxdb")?.labels.pod, "influxdb-0");
  });

  it("scrapes each function's /_/metrics on the watchdog's port, labelled with its name, despite faas-netes's annotation", async () => {
    const functions = (await active()).filter((t) => t.labels.job === "functions");
    assert.equal(functions.length, 1);
    assert.equal(functions[0]?.labels.function, "predict");
    assert.match(functions[0]?.scrapeUrl ?? "", /\/_\/metrics$/);
    assert.equal(functions[0]?.health, "up");
  });

  it("answers every query of the platform dashboard, whose panels all read the provisioned Prometheus datasource", async () => {
    const datasources = parse(
      readFileSync(join(REPO_ROOT, "deploy/grafana/provisioning/datasources/prometheus.yaml"), "utf8"),
    ) as { datasources: Array<{ uid: string; url: string }> };
    const [datasource] = datasources.datasources;
    assert.equal(datasource?.url, "http://prometheus.fanwatch-monitoring:9090", "the Service of prometheus.yaml");
    const dashboard = JSON.parse(readFileSync(join(REPO_ROOT, "deploy/grafana/dashboards/platform.json"), "utf8")) as {
      panels: Array<{ title: string; datasource: { uid: string }; targets: Array<{ expr: string }> }>;
    };
    for (const panel of dashboard.panels) {
      assert.equal(panel.datasource.uid, datasource?.uid, panel.title);
      for (const { expr } of panel.targets) {
        const answer = await prometheus!.get<{ resultType: string }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
        assert.ok(answer.resultType, `${panel.title}: ${expr}`);
      }
    }
  });

  it("keeps of cAdvisor the node's block devices and fanwatch's containers, labelled by node, with the token sent", async () => {
    type Sample = { metric: Record<string, string>; value: [number, string] };
    const query = (q: string) =>
      prometheus!.get<{ result: Sample[] }>(`/api/v1/query?query=${encodeURIComponent(q)}`).then((d) => d.result);
    await eventually(
      "cAdvisor scraped",
      async () => (await query('{job="cadvisor", __name__=~"container_.+"}')).length > 0,
    );
    const kept = (await query('{job="cadvisor", __name__=~"container_.+"}'))
      .map(
        ({ metric }) =>
          `${metric.__name__} ${metric.node} ${metric.namespace ?? ""}/${metric.id} ${metric.device ?? ""}`,
      )
      .sort();
    assert.deepEqual(kept, [
      "container_fs_limit_bytes nuc-1 // /dev/sda2",
      "container_fs_usage_bytes nuc-1 // /dev/sda2",
      "container_memory_working_set_bytes nuc-1 fanwatch//kubepods/pod1/c1 ",
    ]);
    assert.ok(kubelet!.requests.every((r) => r.authorised && r.path === "/metrics/cadvisor"));
    // What NodeDiskAlmostFull and NodeDiskFillingUp divide: one series per node and device.
    const used = await query(
      'container_fs_usage_bytes{job="cadvisor", id="/"} / container_fs_limit_bytes{job="cadvisor", id="/"}',
    );
    assert.deepEqual(
      used.map(({ metric, value }) => [metric.node, metric.device, value[1]]),
      [["nuc-1", "/dev/sda2", "0.42"]],
    );
  });

  it("loads every rule and evaluates it without error, and sends to every Alertmanager the headless Service's DNS gives", async () => {
    await eventually("the rules evaluated", async () => {
      const groups = (await prometheus!.get<{ groups: Array<{ rules: Array<{ health: string }> }> }>("/api/v1/rules"))
        .groups;
      const all = groups.flatMap((g) => g.rules);
      return all.length === rules.length && all.every((r) => r.health === "ok");
    });
    const alertmanagers = async () =>
      (
        await prometheus!.get<{ activeAlertmanagers: Array<{ url: string }> }>("/api/v1/alertmanagers")
      ).activeAlertmanagers
        .map((a) => a.url)
        .sort()
        .join(" ");
    // One node: one replica, one address.
    await eventually("one Alertmanager", async () => (await alertmanagers()) === "http://10.42.0.7:9093/api/v2/alerts");
    // Two or three nodes: the second replica's record appears, and Prometheus sends to both.
    await answer!({ [ALERTMANAGERS]: ["10.42.0.7", "10.42.1.5"] });
    await eventually(
      "both Alertmanagers",
      async () => (await alertmanagers()) === "http://10.42.0.7:9093/api/v2/alerts http://10.42.1.5:9093/api/v2/alerts",
    );
  });
});
