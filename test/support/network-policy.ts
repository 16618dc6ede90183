/** A minimal evaluator of Kubernetes NetworkPolicy semantics, for checking the shipped policies offline. */
export interface Labels {
  [key: string]: string;
}

export interface Endpoint {
  namespace: string;
  labels: Labels;
}

/** Outside the cluster (a fan on the plant network, a browser). */
export const OUTSIDE = "outside" as const;
export type Peer = Endpoint | typeof OUTSIDE;

interface Selector {
  matchLabels?: Labels;
}
interface PolicyPeer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string };
}
interface Rule {
  from?: PolicyPeer[];
  to?: PolicyPeer[];
  ports?: Array<{ protocol?: string; port?: number }>;
}
export interface NetworkPolicy {
  metadata: { name: string; namespace: string };
  spec: { podSelector: Selector; policyTypes: Array<"Ingress" | "Egress">; ingress?: Rule[]; egress?: Rule[] };
}

const matches = (selector: Selector | undefined, labels: Labels) =>
  Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);

function peerMatches(peer: PolicyPeer, policyNamespace: string, other: Peer): boolean {
  if (other === OUTSIDE) return peer.ipBlock !== undefined;
  if (peer.ipBlock !== undefined) return false; // ipBlock is for addresses outside the cluster
  const namespaceOk =
    peer.namespaceSelector === undefined
      ? other.namespace === policyNamespace
      : matches(peer.namespaceSelector, { "kubernetes.io/metadata.name": other.namespace });
  return namespaceOk && (peer.podSelector === undefined || matches(peer.podSelector, other.labels));
}

function ruleAllows(
  rule: Rule,
  peers: PolicyPeer[] | undefined,
  policyNamespace: string,
  other: Peer,
  port: number,
  protocol: string,
): boolean {
  const portOk =
    rule.ports === undefined ||
    rule.ports.some((p) => (p.protocol ?? "TCP") === protocol && (p.port === undefined || p.port === port));
  const peerOk = peers === undefined || peers.some((p) => peerMatches(p, policyNamespace, other));
  return portOk && peerOk;
}

/** Whether one direction lets the traffic through: no policy selects the pod, or one allows it. */
function directionAllows(
  policies: NetworkPolicy[],
  pod: Peer,
  direction: "Ingress" | "Egress",
  other: Peer,
  port: number,
  protocol: string,
): boolean {
  if (pod === OUTSIDE) return true;
  const selecting = policies.filter(
    (p) =>
      p.metadata.namespace === pod.namespace &&
      p.spec.policyTypes.includes(direction) &&
      matches(p.spec.podSelector, pod.labels),
  );
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    (direction === "Ingress" ? (p.spec.ingress ?? []) : (p.spec.egress ?? [])).some((rule) =>
      ruleAllows(rule, direction === "Ingress" ? rule.from : rule.to, p.metadata.namespace, other, port, protocol),
    ),
  );
}

export function allows(policies: NetworkPolicy[], from: Peer, to: Peer, port: number, protocol = "TCP"): boolean {
  return (
    directionAllows(policies, from, "Egress", to, port, protocol) &&
    directionAllows(policies, to, "Ingress", from, port, protocol)
  );
}
