import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { flowRows, tableFlows } from "../support/flow-table.js";
import {
  installations,
  networkPolicies,
  podTemplates,
  render,
  selects,
  services,
  type K8sObject,
  type PodTemplate,
  type Service,
} from "../support/k3s-render.js";
import {
  allowedFlows,
  allows,
  inCidr,
  matches,
  OUTSIDE,
  POD_CIDR,
  policyPorts,
  SERVICE_CIDR,
  type NamedPeer,
  type NetworkPolicy,
  type Peer,
  type PortSpec,
} from "../support/network-policy.js";
import { CHART_PODS, CHART_SERVICES, functionStandIns } from "../support/openfaas-chart-stand-in.js";

// No cluster runs here: the policies, selectors and ports are checked on what `kubectl kustomize`
// renders, with the pods OpenFaaS makes stood in for (test/support/openfaas-chart-stand-in.ts).

/** The namespaces whose policies we ship. */
const OURS = ["fanwatch", "fanwatch-monitoring", "openfaas", "openfaas-fn"];

/** A pod's name in the flows table (docs/deploy.md): its namespace and its name label. */
function podName(pod: PodTemplate): string {
  const l = pod.labels;
  const name =
    l["app.kubernetes.io/name"] ??
    l.faas_function ??
    l.app ??
    (l["fanwatch.io/nats-admin"] === "true" ? "nats-admin" : "");
  assert.ok(name !== "", `${pod.owner}: no name label (app.kubernetes.io/name, faas_function or app)`);
  return `${pod.namespace}/${name}`;
}

/** A pod as the evaluator sees it, with its namespace's labels (a namespaceSelector reads them). */
function peerMaker(objects: K8sObject[]): (pod: PodTemplate) => Peer {
  const labels = new Map(
    objects.filter((o) => o.kind === "Namespace").map((o) => [o.metadata.name, o.metadata.labels ?? {}]),
  );
  return (pod) => ({ namespace: pod.namespace, labels: pod.labels, namespaceLabels: labels.get(pod.namespace) ?? {} });
}

/** What the table names besides the pods rendered: outside, and pods no manifest of ours makes. */
const REPRESENTATIVES: NamedPeer[] = [
  { name: "outside", peer: OUTSIDE },
  {
    name: "kube-system/kube-dns",
    peer: { namespace: "kube-system", labels: { "k8s-app": "kube-dns" }, ip: "10.42.0.5" },
  },
  // An admin's `kubectl run --labels=fanwatch.io/nats-admin=true` (docs/deploy.md).
  { name: "fanwatch/nats-admin", peer: { namespace: "fanwatch", labels: { "fanwatch.io/nats-admin": "true" } } },
  // What no row names, so that nothing may reach it or come from it.
  { name: "a pod of another namespace", peer: { namespace: "web", labels: { app: "intranet" }, ip: "10.42.3.7" } },
  { name: "a Service address", peer: { ip: "10.43.0.1" } },
  {
    name: "a Prometheus of an unlabelled namespace",
    peer: { namespace: "other", labels: { "app.kubernetes.io/name": "prometheus" }, ip: "10.42.4.9" },
  },
  {
    name: "another pod of a namespace labelled fanwatch.io/monitoring",
    peer: {
      namespace: "monitoring",
      namespaceLabels: { "fanwatch.io/monitoring": "true" },
      labels: { "app.kubernetes.io/name": "grafana" },
      ip: "10.42.5.3",
    },
  },
];

const SIMULATOR = "deploy/k3s/simulator";

for (const installation of installations())
  describe(`${installation} with ${SIMULATOR}: network policies, selectors and ports (checked offline)`, () => {
    let objects: K8sObject[];
    let pods: PodTemplate[];
    let allServices: Service[];
    let policies: NetworkPolicy[];
    let asPeer: (pod: PodTemplate) => Peer;
    before(() => {
      objects = [...render(installation), ...render(SIMULATOR)];
      const functions = functionStandIns();
      pods = [...podTemplates(objects), ...CHART_PODS, ...functions.pods];
      allServices = [...services(objects), ...CHART_SERVICES, ...functions.services];
      policies = networkPolicies(objects);
      asPeer = peerMaker(objects);
    });

    it("selects pods with every Service, and resolves every Service port to a port of each pod it selects", () => {
      for (const service of allServices) {
        const where = `Service ${service.namespace}/${service.name}`;
        const selected = pods.filter((p) => p.namespace === service.namespace && selects(service.selector, p.labels));
        assert.ok(selected.length > 0, `${where} selects no pod`);
        for (const port of service.ports)
          for (const pod of selected) {
            const target = port.targetPort ?? port.port;
            const protocol = port.protocol ?? "TCP";
            assert.ok(
              pod.ports.some(
                (c) =>
                  (typeof target === "number" ? c.containerPort === target : c.name === target) &&
                  (c.protocol ?? "TCP") === protocol,
              ),
              `${where} port ${port.port} → ${target}/${protocol}: no such container port on ${pod.owner}`,
            );
          }
      }
    });

    it("selects at least one pod with every NetworkPolicy", () => {
      for (const policy of policies)
        assert.ok(
          pods.some((p) => isSelected(policy, p)),
          `NetworkPolicy ${policy.metadata.namespace}/${policy.metadata.name} selects no pod`,
        );
    });

    it("denies by default in every namespace and covers every workload with a policy of its own", () => {
      for (const namespace of OURS) {
        const deny = policies.find(
          (p) =>
            p.metadata.namespace === namespace &&
            Object.keys(p.spec.podSelector).length === 0 &&
            p.spec.ingress === undefined &&
            p.spec.egress === undefined,
        );
        assert.deepEqual(deny?.spec.policyTypes.sort(), ["Egress", "Ingress"], `default deny in ${namespace}`);
      }
      for (const pod of podTemplates(objects)) {
        const own = policies.filter(
          (p) =>
            p.metadata.namespace === pod.namespace && Object.keys(p.spec.podSelector).length > 0 && isSelected(p, pod),
        );
        assert.ok(own.length > 0, `${pod.owner} has a policy of its own`);
      }
    });

    it("allows exactly the flows of the table in docs/deploy.md, for the chart's pods and the functions too", () => {
      const named: NamedPeer[] = [...pods.map((p) => ({ name: podName(p), peer: asPeer(p) })), ...REPRESENTATIVES];
      const peers = [...new Map(named.map((n) => [n.name, n])).values()];
      const governed = (n: NamedPeer) => OURS.some((ns) => n.name.startsWith(`${ns}/`));
      const ports = unique([
        ...policyPorts(policies),
        ...pods.flatMap((p) => p.ports.map((c) => ({ port: c.containerPort, protocol: c.protocol ?? "TCP" }))),
      ]);
      const allowed = allowedFlows(policies, peers, ports, governed);
      const table = tableFlows(
        flowRows(),
        peers.filter((p) => governed(p)).map((p) => p.name),
      );
      const notInTable = [...allowed].filter((f) => !table.has(f)).sort();
      const notAllowed = [...table].filter((f) => !allowed.has(f)).sort();
      assert.deepEqual(
        { "allowed, but not in the table": notInTable, "in the table, but not allowed": notAllowed },
        { "allowed, but not in the table": [], "in the table, but not allowed": [] },
      );
    });

    it("keeps the pod and Service CIDRs out of every ipBlock", () => {
      const blocks = policies.flatMap((p) =>
        [...(p.spec.ingress ?? []).flatMap((r) => r.from ?? []), ...(p.spec.egress ?? []).flatMap((r) => r.to ?? [])]
          .flatMap((peer) => (peer.ipBlock === undefined ? [] : [peer.ipBlock]))
          .map((block) => [`${p.metadata.namespace}/${p.metadata.name}`, block] as const),
      );
      assert.ok(blocks.length > 0);
      for (const [name, block] of blocks)
        for (const cluster of [POD_CIDR, SERVICE_CIDR])
          assert.ok(
            !overlaps(block.cidr, cluster) || (block.except ?? []).includes(cluster),
            `${name}: ${block.cidr} leaves out ${cluster}`,
          );
    });

    it("keeps the client's address on every node port, so that the ingress ipBlocks can name the plant network", () => {
      const nodePorts = objects.filter(
        (o) => o.kind === "Service" && ["NodePort", "LoadBalancer"].includes(String(o.spec?.type)),
      );
      assert.ok(nodePorts.length > 0);
      for (const service of nodePorts)
        assert.equal(service.spec?.externalTrafficPolicy, "Local", `Service ${service.metadata.name}`);
    });

    it("lets the Prometheus of a namespace labelled fanwatch.io/monitoring scrape every pod that asks to be scraped", () => {
      const scraper: Peer = {
        namespace: "fanwatch-monitoring",
        namespaceLabels: { "fanwatch.io/monitoring": "true" },
        labels: { "app.kubernetes.io/name": "prometheus" },
      };
      const annotated = objects.flatMap((o) => {
        const template = (o.spec as { template?: { metadata?: { annotations?: Record<string, string> } } } | undefined)
          ?.template;
        const annotations = template?.metadata?.annotations ?? {};
        return annotations["prometheus.io/scrape"] === "true"
          ? podTemplates([o]).map((pod) => [pod, Number(annotations["prometheus.io/port"])] as const)
          : [];
      });
      assert.ok(annotated.length > 0);
      for (const [pod, port] of annotated) {
        assert.ok(allows(policies, scraper, asPeer(pod), port), `${pod.owner}'s metrics on ${port}`);
        assert.ok(
          !allows(policies, { ...scraper, namespace: "other", namespaceLabels: {} }, asPeer(pod), port),
          `${pod.owner}: not from an unlabelled namespace`,
        );
      }
    });
  });

function isSelected(policy: NetworkPolicy, pod: PodTemplate): boolean {
  return policy.metadata.namespace === pod.namespace && matches(policy.spec.podSelector, pod.labels);
}

function overlaps(a: string, b: string): boolean {
  const base = (cidr: string) => cidr.split("/")[0] ?? "";
  return inCidr(base(a), b) || inCidr(base(b), a);
}

function unique(ports: PortSpec[]): PortSpec[] {
  return [...new Map(ports.map((p) => [`${p.port}/${p.protocol}`, p])).values()];
}
