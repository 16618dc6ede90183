import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";

// A stand-in for a node's kubelet, which needs a cluster: HTTPS on a loopback port with a throwaway
// self-signed certificate (the kubelet's is signed by K3s's own CA, which Prometheus does not verify
// either), answering only a client that sends the expected bearer token, with a fixed text for each
// metrics path (as /metrics/cadvisor would give it).

export interface KubeletStandIn {
  /** host:port, as Kubernetes node discovery would give it for port 10250. */
  address: string;
  /** The paths asked for, with whether the token was right. */
  requests: Array<{ path: string; authorised: boolean }>;
  close(): Promise<void>;
}

/** Serves `pages` (path → exposition text) to a client presenting `Bearer ${token}`; 401 otherwise, 404 elsewhere. */
export async function startKubeletStandIn(token: string, pages: Record<string, string>): Promise<KubeletStandIn> {
  const dir = mkdtempSync(join(tmpdir(), "fanwatch-kubelet-"));
  const made = spawnSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"].concat([
      "-keyout",
      "tls.key",
      "-out",
      "tls.crt",
    ]),
    { cwd: dir },
  );
  if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
  const tls = { key: readFileSync(join(dir, "tls.key")), cert: readFileSync(join(dir, "tls.crt")) };
  rmSync(dir, { recursive: true, force: true });

  const requests: KubeletStandIn["requests"] = [];
  const server = createServer(tls, (req, res) => {
    const path = req.url ?? "";
    const authorised = req.headers.authorization === `Bearer ${token}`;
    requests.push({ path, authorised });
    const page = pages[path];
    if (!authorised) return void res.writeHead(401).end();
    if (page === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(page);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    async close() {
      server.close();
      server.closeAllConnections();
      await once(server, "close");
    },
  };
}
