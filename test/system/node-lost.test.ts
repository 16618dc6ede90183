import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { kubectlStandIn, type KubectlScenario, type KubectlStandIn } from "../support/kubectl-stand-in.js";
import { REPO_ROOT } from "../support/paths.js";

const SCRIPT = join(REPO_ROOT, "deploy/k3s/node-lost.sh");

// deploy/k3s/node-lost.sh run for real, against a kubectl stand-in (no cluster runs here).
describe("deploy/k3s/node-lost.sh", () => {
  let kubectl: KubectlStandIn | undefined;
  afterEach(async () => kubectl?.cleanup());

  // NODE_LOST_TIMEOUT: 0 gives up at the first look; 60 leaves room for the scenario's answers.
  const run = async (scenario: KubectlScenario, args: string[], timeout = "60") => {
    kubectl = await kubectlStandIn(scenario);
    const env = {
      ...process.env,
      PATH: `${kubectl.dir}:${process.env.PATH}`,
      NODE_LOST_TIMEOUT: timeout,
      NODE_LOST_INTERVAL: "0",
    };
    return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(SCRIPT, args, { env }, (error, stdout, stderr) =>
        resolve({ code: typeof error?.code === "number" ? error.code : 0, stdout, stderr }),
      ),
    );
  };
  const lost: KubectlScenario = {
    nodes: { "nuc-a": "True", "nuc-b": "Unknown" },
    pods: [
      { name: "mqtt-connector-1", node: "nuc-b", owner: "StatefulSet" },
      { name: "alertmanager-1", node: "nuc-b", owner: "StatefulSet" },
      { name: "notifier-7d9c-x2x", node: "nuc-b", owner: "ReplicaSet" },
      { name: "nats-0", node: "nuc-a", owner: "StatefulSet" },
      { name: "prometheus-0", node: "nuc-b", owner: "StatefulSet", namespace: "fanwatch-monitoring" },
      { name: "etcd-backup-0", node: "nuc-b", owner: "StatefulSet", namespace: "kube-system" },
    ],
    after: {
      "mqtt-connector-1": ["", "/Pending/", "nuc-a/Running/False", "nuc-a/Running/True"],
      "alertmanager-1": ["nuc-a/Running/True"],
      "prometheus-0": ["/Pending/", "nuc-a/Running/True"],
      "etcd-backup-0": ["/Pending/"],
    },
  };
  const taints = async () => (await kubectl?.calls())?.filter((c) => c[0] === "taint") ?? [];

  it("taints a NotReady node out-of-service and waits for its StatefulSet pods to run elsewhere", async () => {
    const result = await run(lost, ["nuc-b", "--yes"]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await taints(), [
      ["taint", "nodes", "nuc-b", "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute", "--overwrite"],
    ]);
    assert.match(result.stdout, /mqtt-connector-1 runs on nuc-a and is Ready/);
    assert.match(result.stdout, /alertmanager-1 runs on nuc-a and is Ready/);
    assert.match(result.stdout, /fanwatch-monitoring\/prometheus-0 runs on nuc-a and is Ready/, "Prometheus too");
    assert.doesNotMatch(result.stdout, /nats-0|notifier/, "only the StatefulSet pods of the lost node");
    assert.doesNotMatch(result.stdout, /etcd-backup-0/, "only fanwatch's namespaces");
    assert.match(result.stdout, /kubectl taint nodes nuc-b node\.kubernetes\.io\/out-of-service-/, "how to undo it");
  });

  it("names a pod that does not come back, as one whose local-path volume stays on the lost node", async () => {
    const result = await run({ ...lost, after: { ...lost.after, "alertmanager-1": ["/Pending/"] } }, [
      "nuc-b",
      "--yes",
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /alertmanager-1 is not back \(Pending\): on local-path its volume stays on nuc-b/);
    assert.doesNotMatch(result.stderr, /mqtt-connector-1/);
  });

  it("refuses a node that is Ready, and runs only when told --yes", async () => {
    const ready = await run(lost, ["nuc-a", "--yes"]);
    assert.equal(ready.code, 1);
    assert.match(ready.stderr, /nuc-a is Ready: nothing to do \(drain it instead/);
    assert.deepEqual(await taints(), []);
    const unconfirmed = await run(lost, ["nuc-b"]);
    assert.equal(unconfirmed.code, 2);
    assert.deepEqual(await taints(), []);
  });
});
