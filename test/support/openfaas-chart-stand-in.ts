/**
 * A stand-in for the pods and Services that OpenFaaS makes and `kubectl kustomize` does not render:
 * the chart's (faas-netes chart 15.0.6, installed by deploy/k3s/base/openfaas.yaml as Community
 * Edition with `async: true`) and the functions' (deployed by faas-cli from stack.yml). Their
 * labels and ports are read from that chart's templates and from faas-netes's handlers, so that the
 * network-flow and selector checks can count them; nothing here runs.
 *
 * - gateway-dep.yaml: pods `app: gateway`; container `gateway` with ports `http` 8080 and
 *   `gw-metrics` 8082, and in CE the `faas-netes` provider container beside it on 8081 (`provider`),
 *   which alone talks to the Kubernetes API (the controller's service account).
 * - queueworker-ce-dep.yaml: pods `app: queue-worker`, no ports; it takes async invocations from
 *   NATS and calls the functions directly (`faas_function_suffix`).
 * - nats-dep.yaml: pods `app: nats` (nats-streaming in CE), 4222.
 * - prometheus-dep.yaml: pods `app: prometheus`, 9090; it finds the pods of `openfaas` through the
 *   Kubernetes API (`kubernetes_sd_configs`, role pod).
 * - alertmanager-dep.yaml: pods `app: alertmanager`, 9093 (it calls the gateway's /system/alert).
 * - The Services gateway (8080), nats (4222), prometheus (9090) and alertmanager (9093) select them
 *   by `app`. With `exposeServices: false` there is no gateway-external; the Pro-only pods
 *   (operator, autoscaler, dashboard, event-worker, oidc-plugin) are not made.
 * - A function (faas-netes pkg/handlers/deploy.go): pods labelled `faas_function: <name>` plus the
 *   labels of stack.yml, one container port `http` 8080; a ClusterIP Service named after the
 *   function selecting `faas_function`, port 8080 to 8080. of-watchdog (0.11.6 in the template)
 *   also listens on 8081 for its own metrics, a port faas-netes does not declare and that no
 *   policy opens.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import type { PodTemplate, Service } from "./k3s-render.js";
import { REPO_ROOT } from "./paths.js";

export const CHART_VERSION = "15.0.6";

const chartPod = (app: string, ports: PodTemplate["ports"]): PodTemplate => ({
  owner: `stand-in for the chart's Deployment/${app}`,
  namespace: "openfaas",
  labels: { app },
  ports,
});

const chartService = (name: string, port: number): Service => ({
  name,
  namespace: "openfaas",
  selector: { app: name },
  ports: [{ port, targetPort: port, protocol: "TCP" }],
});

export const CHART_PODS: PodTemplate[] = [
  chartPod("gateway", [
    { name: "http", containerPort: 8080 },
    { name: "gw-metrics", containerPort: 8082 },
    { name: "provider", containerPort: 8081 },
  ]),
  chartPod("queue-worker", []),
  chartPod("nats", [{ containerPort: 4222 }]),
  chartPod("prometheus", [{ containerPort: 9090 }]),
  chartPod("alertmanager", [{ containerPort: 9093 }]),
];

export const CHART_SERVICES: Service[] = [
  chartService("gateway", 8080),
  chartService("nats", 4222),
  chartService("prometheus", 9090),
  chartService("alertmanager", 9093),
];

interface Stack {
  functions: Record<string, { labels?: Record<string, string> }>;
}

/** The functions of stack.yml as faas-netes deploys them into openfaas-fn. */
export function functionStandIns(): { pods: PodTemplate[]; services: Service[] } {
  const stack = parse(readFileSync(join(REPO_ROOT, "stack.yml"), "utf8")) as Stack;
  const names = Object.keys(stack.functions).sort();
  return {
    pods: names.map((name) => ({
      owner: `stand-in for faas-netes's Deployment/${name}`,
      namespace: "openfaas-fn",
      labels: { ...stack.functions[name]?.labels, faas_function: name },
      ports: [{ name: "http", containerPort: 8080 }],
    })),
    services: names.map((name) => ({
      name,
      namespace: "openfaas-fn",
      selector: { faas_function: name },
      ports: [{ name: "http", port: 8080, targetPort: 8080, protocol: "TCP" }],
    })),
  };
}
