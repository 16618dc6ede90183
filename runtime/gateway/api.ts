import { readFileSync } from "node:fs";
import { z } from "zod";
import { NAMESPACE } from "./logs.js";
import type { GatewayFunction } from "./gateway.js";

/**
 * The answers of the OpenFaaS gateway API that the local gateway gives, in OpenFaaS's shapes
 * (faas-provider's types, faas-netes' rules for namespaces): what faas-cli and the official
 * connector-sdk read. docs/start.md lists them.
 */

const VERSION = z
  .object({ version: z.string() })
  .parse(JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"))).version;

/** Go's names for the architectures (OpenFaaS reports the image's GOARCH), where Node's differ. */
const GO_ARCH: Partial<Record<NodeJS.Architecture, string>> = { x64: "amd64", ia32: "386" };

/** GET /system/info: the gateway's version, the provider's, and the architecture. */
export function systemInfo(): unknown {
  const version = { sha: "", release: VERSION };
  return {
    provider: { provider: "fanwatch local gateway", orchestration: "local processes", version },
    version,
    arch: GO_ARCH[process.arch] ?? process.arch,
  };
}

/** GET /system/namespaces: the one namespace the local gateway runs its functions in. */
export function namespaces(): string[] {
  return [NAMESPACE];
}

/**
 * Why a `?namespace=` cannot be served, if it cannot: as faas-netes, no namespace or the
 * functions' one is served, any other is refused (400 "namespace must be: openfaas-fn").
 */
export function namespaceRefusal(namespace: string | null | undefined): string | undefined {
  return namespace === null || namespace === undefined || namespace === "" || namespace === NAMESPACE
    ? undefined
    : `namespace must be: ${NAMESPACE}`;
}

/**
 * The function a `/function/<target>` or `/async-function/<target>` names: `name` or
 * `name.namespace` (what the connector-sdk and `faas-cli invoke -n` call). Another namespace is
 * answered as the OpenFaaS gateway does with scale from zero: the function is not found.
 */
export function functionTarget(target: string): { name: string } | { error: string } {
  const dot = target.lastIndexOf(".");
  if (dot < 0) return { name: target };
  const namespace = target.slice(dot + 1);
  if (namespace === NAMESPACE) return { name: target.slice(0, dot) };
  return { error: `error finding function ${target}: namespace must be: ${NAMESPACE}` };
}

/** GET /system/secrets: the secrets stack.yml gives the functions, by name (never a value). */
export function secretList(functions: Iterable<GatewayFunction>): Array<{ name: string; namespace: string }> {
  const names = new Set([...functions].flatMap((f) => f.spec.secrets));
  return [...names].sort().map((name) => ({ name, namespace: NAMESPACE }));
}

/** A function as /system/functions and /system/function/<name> describe it (faas-provider's FunctionStatus). */
export function describeFunction(fn: GatewayFunction, invocationCount: number): Record<string, unknown> {
  const { spec, set } = fn;
  return {
    name: fn.name,
    image: spec.image,
    namespace: NAMESPACE,
    ...(fn.envProcess === undefined ? {} : { envProcess: fn.envProcess }),
    envVars: shownEnv(fn.env),
    labels: spec.labels,
    annotations: spec.annotations,
    secrets: spec.secrets,
    ...(spec.limits === undefined ? {} : { limits: spec.limits }),
    ...(spec.requests === undefined ? {} : { requests: spec.requests }),
    readOnlyRootFilesystem: spec.readonly_root_filesystem,
    replicas: set.replicas,
    availableReplicas: set.availableReplicas,
    invocationCount,
    ...(set.startedAt === undefined ? {} : { createdAt: set.startedAt.toISOString() }),
  };
}

/** Names whose values are credentials (a `*_FILE` holds the path to one, which may be shown). */
const SECRET_NAME = /pass(word)?|secret|token|credential|(^|_)(api_?)?key($|_)/i;

/**
 * The variables as the API shows them: those named like a credential left out altogether, and a
 * password inside a URL (mqtt://user:password@host) replaced by "***". OpenFaaS keeps secrets out
 * of envVars (they are files); locally MQTT_PASSWORD is a variable, so it is kept out here.
 */
function shownEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env)
      .filter(([name]) => /_FILE$/i.test(name) || !SECRET_NAME.test(name))
      .map(([name, value]) => [name, withoutPassword(value)]),
  );
}

function withoutPassword(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(value)) return value;
  try {
    const url = new URL(value);
    if (url.password === "") return value;
    url.password = "***";
    return url.toString();
  } catch {
    return value;
  }
}
