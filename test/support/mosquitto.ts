import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../lib/net.js";
import { terminate } from "./process.js";
import { REPO_ROOT } from "./paths.js";

const BINARY = "/usr/sbin/mosquitto";

export interface Broker {
  url: string;
  port: number;
  /** The broker's process id (changes on restart). */
  readonly pid: number | undefined;
  /** Stops the broker (SIGTERM, waits for exit) and deletes its folder. */
  stop(): Promise<void>;
  /** Stops the broker and starts it again on the same port with the same persistence. */
  restart(): Promise<void>;
}

/**
 * A real Mosquitto on a free port, configured from deploy/mosquitto/mosquitto.conf with the
 * listener, persistence folder and authentication swapped for the test's (anonymous, loopback).
 */
export async function startMosquitto(options: { users?: Record<string, string>; tls?: boolean } = {}): Promise<Broker & { caFile?: string }> {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: apt-get install -y mosquitto`);
  const dir = await mkdtemp(join(tmpdir(), "fanwatch-mosquitto-"));
  const port = await freePort();
  const shipped = await readFile(join(REPO_ROOT, "deploy/mosquitto/mosquitto.conf"), "utf8");
  const config = shipped
    .split("\n")
    .filter((line) => !/^(listener|allow_anonymous|password_file|acl_file|persistence_location|log_dest) /.test(line))
    // `user root`: started as root (CI), Mosquitto would otherwise switch to the mosquitto user,
    // which cannot read or write this private temporary folder. Ignored when not root.
    .concat([`listener ${port} 127.0.0.1`, `persistence_location ${dir}/`, `log_dest file ${join(dir, "mosquitto.log")}`, "user root"])
    .concat(options.tls === true ? tlsListener(dir) : [])
    .concat(await authentication(dir, options.users))
    .join("\n");
  await writeFile(join(dir, "mosquitto.conf"), config);
  let child: ChildProcess = await launch(dir, port).catch(async (error: unknown) => {
    const log = await readFile(join(dir, "mosquitto.log"), "utf8").catch(() => "(no log)");
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${(error as Error).message}\n${log}`);
  });
  return {
    url: `${options.tls === true ? "mqtts" : "mqtt"}://127.0.0.1:${port}`,
    port,
    get pid() {
      return child.pid;
    },
    ...(options.tls === true ? { caFile: join(dir, "ca.crt") } : {}),
    async stop() {
      await terminate(child);
      await rm(dir, { recursive: true, force: true });
    },
    async restart() {
      await terminate(child);
      child = await launch(dir, port);
    },
  };
}

/** A throwaway CA and a server certificate for 127.0.0.1, made with openssl. */
function tlsListener(dir: string): string[] {
  const run = (args: string[]) => {
    const result = spawnSync("openssl", args, { cwd: dir });
    if (result.status !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr.toString()}`);
  };
  run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=fanwatch test CA", "-keyout", "ca.key", "-out", "ca.crt"]);
  run(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"]);
  writeFileSync(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  run(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.crt"]);
  return [`cafile ${join(dir, "ca.crt")}`, `certfile ${join(dir, "server.crt")}`, `keyfile ${join(dir, "server.key")}`];
}

/** Anonymous access, or a password file for `users` (made with mosquitto_passwd, as in production). */
async function authentication(dir: string, users: Record<string, string> | undefined): Promise<string[]> {
  if (users === undefined) return ["allow_anonymous true"];
  const file = join(dir, "passwd");
  await writeFile(file, "");
  for (const [user, password] of Object.entries(users)) {
    const result = spawnSync("mosquitto_passwd", ["-b", file, user, password]);
    if (result.status !== 0) throw new Error(`mosquitto_passwd failed: ${result.stderr.toString()}`);
  }
  return ["allow_anonymous false", `password_file ${file}`];
}

async function launch(dir: string, port: number): Promise<ChildProcess> {
  const child = spawn(BINARY, ["-c", join(dir, "mosquitto.conf")], { stdio: "ignore" });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}); its log:`);
    if (await accepts(port)) return child;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill("SIGKILL");
  throw new Error(`mosquitto did not listen on ${port} within 10 s`);
}


function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
