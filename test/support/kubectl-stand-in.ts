import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A STAND-IN for kubectl: no cluster runs here. An executable named `kubectl` in a temporary
 * folder (put it first on PATH) that answers the few commands deploy/k3s/node-lost.sh runs from a
 * scenario, as kubectl would print them for a cluster in that state, and records every call.
 */
export interface KubectlScenario {
  /** Each node's Ready condition: "True", "False" or "Unknown". */
  nodes: Record<string, string>;
  /** The pods on each node before anything happens, with their owner's kind and namespace (fanwatch if none). */
  pods: Array<{ name: string; node: string; owner: string; namespace?: string }>;
  /**
   * What `get pod <name>` prints once the node is tainted ("<node>/<phase>/<Ready>", "/Pending/"
   * while not scheduled, "" while not recreated), one answer per call, the last one repeated.
   */
  after: Record<string, string[]>;
}

export interface KubectlStandIn {
  /** The folder holding `kubectl`. */
  dir: string;
  /** Every call's arguments, in order. */
  calls(): Promise<string[][]>;
  cleanup(): Promise<void>;
}

const SCRIPT = String.raw`#!/usr/bin/env node
// kubectl STAND-IN (test/support/kubectl-stand-in.ts): answers from scenario.json, records calls.
const fs = require("node:fs");
const path = require("node:path");
const dir = __dirname;
const args = process.argv.slice(2);
fs.appendFileSync(path.join(dir, "calls.jsonl"), JSON.stringify(args) + "\n");
const state = JSON.parse(fs.readFileSync(path.join(dir, "scenario.json"), "utf8"));
const save = () => fs.writeFileSync(path.join(dir, "scenario.json"), JSON.stringify(state));
const rest = args[0] === "-n" ? args.slice(2) : args;
const namespace = args[0] === "-n" ? args[1] : "default";
const inNamespace = (p) => (p.namespace ?? "fanwatch") === namespace;
const [verb, kind, name] = rest;
const flag = (f) => rest.find((a) => a.startsWith(f + "="))?.slice(f.length + 1) ?? rest[rest.indexOf(f) + 1];
if (verb === "get" && kind === "node") {
  if (!(name in state.nodes)) {
    process.stderr.write('Error from server (NotFound): nodes "' + name + '" not found\n');
    process.exit(1);
  }
  process.stdout.write(state.nodes[name]);
} else if (verb === "taint" && kind === "nodes") {
  state.tainted = name;
  save();
  process.stdout.write("node/" + name + " modified\n");
} else if (verb === "get" && kind === "pods") {
  const node = flag("--field-selector").replace("spec.nodeName=", "");
  const pods = state.pods.filter((p) => p.node === node && inNamespace(p));
  process.stdout.write(pods.map((p) => p.name + " " + p.owner + "\n").join(""));
} else if (verb === "get" && kind === "pod") {
  const pod = state.pods.find((p) => p.name === name && inNamespace(p));
  if (state.tainted === undefined) process.stdout.write(pod ? pod.node + "/Running/True" : "");
  else {
    const answers = (pod ? state.after[name] : undefined) ?? [""];
    process.stdout.write(answers.length > 1 ? answers.shift() : answers[0]);
    save();
  }
} else {
  process.stderr.write("kubectl stand-in: no answer for " + args.join(" ") + "\n");
  process.exit(3);
}
`;

export async function kubectlStandIn(scenario: KubectlScenario): Promise<KubectlStandIn> {
  const dir = await mkdtemp(join(tmpdir(), "fanwatch-kubectl-"));
  await writeFile(join(dir, "scenario.json"), JSON.stringify(scenario));
  await writeFile(join(dir, "calls.jsonl"), "");
  await writeFile(join(dir, "kubectl"), SCRIPT);
  await chmod(join(dir, "kubectl"), 0o755);
  return {
    dir,
    calls: async () =>
      (await readFile(join(dir, "calls.jsonl"), "utf8"))
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as string[]),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
