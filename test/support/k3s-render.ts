/**
 * What `kubectl kustomize` renders of deploy/k3s, read as the pods and Services it makes: no cluster
 * runs here, so the flow, selector and port checks are made on the rendered manifests.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import type { NetworkPolicy } from "./network-policy.js";
import { REPO_ROOT } from "./paths.js";

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

/** The pods one workload makes: its pod template's labels and its containers' ports. */
export interface PodTemplate {
  /** `Kind/name` of what makes the pods. */
  owner: string;
  namespace: string;
  labels: Record<string, string>;
  ports: ContainerPort[];
}

export interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
}

export interface Service {
  name: string;
  namespace: string;
  selector: Record<string, string>;
  ports: ServicePort[];
}

export function render(dir: string): K8sObject[] {
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

/**
 * The installations to check: every overlay under deploy/k3s (each a size of cluster), or the base
 * itself while there are none; the simulator is not one, it is added to each, and a kustomize
 * Component (the release's pins) is part of the sizes, not one of them.
 */
export function installations(): string[] {
  const root = join(REPO_ROOT, "deploy/k3s");
  const overlays = readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !["base", "simulator"].includes(d.name))
    .filter((d) => existsSync(join(root, d.name, "kustomization.yaml")))
    .filter((d) => !/^kind:\s*Component\s*$/m.test(readFileSync(join(root, d.name, "kustomization.yaml"), "utf8")))
    .map((d) => `deploy/k3s/${d.name}`)
    .sort();
  return overlays.length > 0 ? overlays : ["deploy/k3s/base"];
}

const Labels = z.record(z.string(), z.string());
const PodTemplateSchema = z.object({
  metadata: z.object({ labels: Labels.optional() }).optional(),
  spec: z.object({
    containers: z.array(
      z.object({
        ports: z
          .array(z.object({ name: z.string().optional(), containerPort: z.number(), protocol: z.string().optional() }))
          .optional(),
      }),
    ),
  }),
});
const WorkloadSpec = z.object({ template: PodTemplateSchema });
const CronJobSpec = z.object({ jobTemplate: z.object({ spec: WorkloadSpec }) });
const ServiceSpec = z.object({
  selector: Labels.optional(),
  ports: z.array(
    z.object({
      name: z.string().optional(),
      port: z.number(),
      targetPort: z.union([z.number(), z.string()]).optional(),
      protocol: z.string().optional(),
    }),
  ),
});

/** The pod template of a workload, a CronJob's included (its jobTemplate's). */
function templateOf(object: K8sObject): z.infer<typeof PodTemplateSchema> | undefined {
  if (["Deployment", "StatefulSet", "DaemonSet", "Job"].includes(object.kind))
    return WorkloadSpec.parse(object.spec).template;
  if (object.kind === "CronJob") return CronJobSpec.parse(object.spec).jobTemplate.spec.template;
  return undefined;
}

export function podTemplates(objects: K8sObject[]): PodTemplate[] {
  return objects.flatMap((object) => {
    const template = templateOf(object);
    if (template === undefined) return [];
    return [
      {
        owner: `${object.kind}/${object.metadata.name}`,
        namespace: object.metadata.namespace ?? "default",
        labels: template.metadata?.labels ?? {},
        ports: template.spec.containers.flatMap((c) => c.ports ?? []),
      },
    ];
  });
}

export function services(objects: K8sObject[]): Service[] {
  return objects
    .filter((o) => o.kind === "Service")
    .map((o) => {
      const spec = ServiceSpec.parse(o.spec);
      return {
        name: o.metadata.name,
        namespace: o.metadata.namespace ?? "default",
        selector: spec.selector ?? {},
        ports: spec.ports,
      };
    });
}

export function networkPolicies(objects: K8sObject[]): NetworkPolicy[] {
  return objects.filter((o) => o.kind === "NetworkPolicy") as unknown as NetworkPolicy[];
}

export const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);
