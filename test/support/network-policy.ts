/**
 * A minimal evaluator of Kubernetes NetworkPolicy semantics, for checking the shipped policies
 * offline, with `ipBlock` read as Calico (the cluster's CNI, docs/deploy.md) reads it: it matches
 * every address in it, pods' and Services' included, less its `except`s. Kubernetes leaves that to
 * the CNI; an `ipBlock` of 0.0.0.0/0 without excepts admits every pod of the cluster.
 */
export interface Labels {
  [key: string]: string;
}

/** A pod. */
export interface Endpoint {
  namespace: string;
  labels: Labels;
  /** Its namespace's labels besides `kubernetes.io/metadata.name`. */
  namespaceLabels?: Labels;
  /** @default POD_IP */
  ip?: string;
}

/** An address that is no pod: outside the cluster, or a Service's cluster IP. */
export interface Address {
  ip: string;
}

export type Peer = Endpoint | Address;

/** K3s's default pod CIDR (--cluster-cidr) and Service CIDR (--service-cidr). */
export const POD_CIDR = "10.42.0.0/16";
export const SERVICE_CIDR = "10.43.0.0/16";

/** A pod's address unless one is given: in the pod CIDR. */
export const POD_IP = "10.42.1.17";

/** Outside the cluster (a fan on the plant network, a browser, a mail server): a documentation address. */
export const OUTSIDE: Address = { ip: "203.0.113.10" };

interface Selector {
  matchLabels?: Labels;
  matchExpressions?: Array<{ key: string; operator: "In" | "NotIn" | "Exists" | "DoesNotExist"; values?: string[] }>;
}
interface PolicyPeer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string; except?: string[] };
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

const isPod = (peer: Peer): peer is Endpoint => "namespace" in peer;

/** Whether a label selector (matchLabels and matchExpressions) selects these labels. */
export function matches(selector: Selector | undefined, labels: Labels): boolean {
  const byLabel = Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return (
    byLabel &&
    (selector?.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
      const value = labels[key];
      if (operator === "Exists") return value !== undefined;
      if (operator === "DoesNotExist") return value === undefined;
      const listed = value !== undefined && values.includes(value);
      return operator === "In" ? listed : !listed;
    })
  );
}

function ipv4(address: string): number {
  const parts = address.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new Error(`not an IPv4 address: ${address}`);
  return parts.reduce((n, p) => n * 256 + p, 0);
}

export function inCidr(address: string, cidr: string): boolean {
  const [base = "", bits = "32"] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  const start = Math.floor(ipv4(base) / size) * size;
  const n = ipv4(address);
  return n >= start && n < start + size;
}

function peerMatches(peer: PolicyPeer, policyNamespace: string, other: Peer): boolean {
  if (peer.ipBlock !== undefined) {
    const ip = isPod(other) ? (other.ip ?? POD_IP) : other.ip;
    return inCidr(ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((c) => inCidr(ip, c));
  }
  if (!isPod(other)) return false; // selectors pick pods only
  const namespaceLabels = { ...other.namespaceLabels, "kubernetes.io/metadata.name": other.namespace };
  const namespaceOk =
    peer.namespaceSelector === undefined
      ? other.namespace === policyNamespace
      : matches(peer.namespaceSelector, namespaceLabels);
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
  if (!isPod(pod)) return true;
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

/** A peer as the flows table names it (docs/deploy.md, "Who can reach what"). */
export interface NamedPeer {
  name: string;
  peer: Peer;
}

export interface PortSpec {
  port: number;
  protocol: string;
}

/** A port no policy names: a pair that may use it may use any port. */
const ANY_PORT: PortSpec = { port: 65535, protocol: "TCP" };

/**
 * Every flow the policies allow between the peers, on the ports given, as `from → to port/protocol`
 * (or `from → to any` where no port is named); pairs of which `governed` holds for neither end
 * (outside and other namespaces' pods) are left out.
 */
export function allowedFlows(
  policies: NetworkPolicy[],
  peers: NamedPeer[],
  ports: PortSpec[],
  governed: (peer: NamedPeer) => boolean,
): Set<string> {
  const flows = new Set<string>();
  for (const from of peers)
    for (const to of peers) {
      if (!governed(from) && !governed(to)) continue;
      if (allows(policies, from.peer, to.peer, ANY_PORT.port, ANY_PORT.protocol)) {
        flows.add(`${from.name} → ${to.name} any`);
        continue;
      }
      for (const { port, protocol } of ports)
        if (allows(policies, from.peer, to.peer, port, protocol))
          flows.add(`${from.name} → ${to.name} ${port}/${protocol}`);
    }
  return flows;
}

/** Every port a policy rule names, with its protocol. */
export function policyPorts(policies: NetworkPolicy[]): PortSpec[] {
  return policies.flatMap((p) =>
    [...(p.spec.ingress ?? []), ...(p.spec.egress ?? [])].flatMap((rule) =>
      (rule.ports ?? []).flatMap((q) =>
        q.port === undefined ? [] : [{ port: q.port, protocol: q.protocol ?? "TCP" }],
      ),
    ),
  );
}
