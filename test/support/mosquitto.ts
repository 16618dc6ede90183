import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../lib/infra/net.js";
import { renderBrokerAuth } from "../../lib/mqtt/broker-auth.js";
import { readServiceUsers, writeBrokerAuth } from "../../lib/mqtt/broker-auth-files.js";
import { mosquittoHash } from "../../lib/mqtt/mosquitto-passwd.js";
import type { FanRecord } from "../../lib/registry/fan-record.js";
import { eventually } from "./eventually.js";
import { terminate } from "./process.js";
import { REPO_ROOT } from "./paths.js";

const BINARY = "/usr/sbin/mosquitto";
/** Debian's path of the dynamic security plugin; the eclipse-mosquitto image's is the shipped one. */
const DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
const SHIPPED = join(REPO_ROOT, "deploy/mosquitto");

export interface Broker {
  url: string;
  port: number;
  /** Mosquitto's log (log_type as shipped: errors, warnings, notices such as connects and disconnects). */
  logFile: string;
  /** The broker's process id (changes on restart). */
  readonly pid: number | undefined;
  /** Stops the broker (SIGTERM, waits for exit) and deletes its folder. */
  stop(): Promise<void>;
  /** Stops the broker and starts it again on the same port with the same persistence. */
  restart(): Promise<void>;
}

/** The shipped security settings, exercised as they are: both listeners, the built password file and ACL. */
export interface ShippedSecurity {
  /** Service users (connector, predict, telegraf, ...) and their passwords, as in the Secret mosquitto-users. */
  users: Record<string, string>;
  /** Active fans of the registry: device id → password (the registry holds its hash). */
  fans: Record<string, string>;
  /** ALLOW_UNBOUND_FANS (the K3s default: false). */
  allowUnboundFans?: boolean;
}

export interface Options {
  /** A password file with these users and no ACL (default: anonymous). Ignored with `shipped`. */
  users?: Record<string, string>;
  /** The one listener speaks TLS with a throwaway CA (caFile). Ignored with `shipped`. */
  tls?: boolean;
  /**
   * Keep the shipped listeners, TLS, client-id binding, password file and ACL (built by
   * fanwatch broker-auth's code from the registry's fans), with ports, paths and certificates
   * swapped for the test's.
   * `url` is then the services' listener, `fansUrl` the fans' TLS listener.
   */
  shipped?: ShippedSecurity;
  /**
   * Drop the shipped max_packet_size, for a test of what the connector does with a message that a
   * broker without a cap (aedes, another broker) delivers. The shipped broker disconnects its sender.
   */
  withoutPacketCap?: boolean;
  /**
   * Add `log_type debug`: Mosquitto 2.0 logs a denied publish ("Denied PUBLISH from …") only at
   * debug, with every packet, which the shipped configuration leaves off (docs/deploy.md).
   */
  debugLog?: boolean;
}

/**
 * A real Mosquitto on a free port, configured from deploy/mosquitto/mosquitto.conf. By default its
 * listeners and authentication are swapped for one loopback listener (anonymous, or `users`,
 * optionally TLS); with `shipped`, its own security settings are kept.
 */
export interface ShippedBroker {
  caFile?: string;
  fansUrl?: string;
  fansPort?: number;
  /** With `shipped`: where passwd, acl and dynamic-security.json are (the broker's /mosquitto/auth). */
  authDir?: string;
  /** With `shipped`: Mosquitto's pid_file. */
  pidFile?: string;
}

export async function startMosquitto(options: Options = {}): Promise<Broker & ShippedBroker> {
  // A free port can be taken by another process between freePort() and Mosquitto's bind (tests run
  // beside other work): a fresh port then, up to three times.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnFreePorts(options);
    } catch (error) {
      if (attempt >= 3 || !(error as Error).message.includes("Address already in use")) throw error;
    }
  }
}

async function startOnFreePorts(options: Options): Promise<Broker & ShippedBroker> {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: apt-get install -y mosquitto`);
  const dir = await mkdtemp(join(tmpdir(), "fanwatch-mosquitto-"));
  const port = await freePort();
  const shipped = (await readFile(join(SHIPPED, "mosquitto.conf"), "utf8"))
    .split("\n")
    .filter((line) => !(options.withoutPacketCap === true && line.startsWith("max_packet_size ")));
  // `user root`: started as root (CI), Mosquitto would otherwise switch to the mosquitto user,
  // which cannot read or write this private temporary folder. Ignored when not root.
  const common = [
    `persistence_location ${dir}/`,
    `log_dest file ${join(dir, "mosquitto.log")}`,
    "user root",
    ...(options.debugLog === true ? ["log_type debug"] : []),
  ];
  let fansPort: number | undefined;
  let lines: string[];
  try {
    if (options.shipped === undefined) {
      lines = shipped
        .filter(
          (line) =>
            !/^(listener|allow_anonymous|password_file|acl_file|certfile|keyfile|use_username_as_clientid|persistence_location|log_dest|pid_file|plugin|plugin_opt_config_file) /.test(
              line,
            ),
        )
        .concat(common, [`listener ${port} 127.0.0.1`])
        .concat(options.tls === true ? [`cafile ${join(dir, "ca.crt")}`, ...certificates(dir)] : [])
        .concat(await authentication(dir, options.users));
    } else {
      fansPort = await freePort();
      certificates(dir);
      await buildAuth(dir, options.shipped);
      lines = swapForTest(shipped, dir, port, fansPort).concat(common);
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  await writeFile(join(dir, "mosquitto.conf"), lines.join("\n"));
  let child: ChildProcess = await launch(dir, port).catch(async (error: unknown) => {
    const log = await readFile(join(dir, "mosquitto.log"), "utf8").catch(() => "(no log)");
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${(error as Error).message}\n${log}`);
  });
  const tlsUrl = options.shipped === undefined && options.tls === true;
  return {
    url: `${tlsUrl ? "mqtts" : "mqtt"}://127.0.0.1:${port}`,
    port,
    logFile: join(dir, "mosquitto.log"),
    get pid() {
      return child.pid;
    },
    ...(tlsUrl || fansPort !== undefined ? { caFile: join(dir, "ca.crt") } : {}),
    ...(fansPort === undefined
      ? {}
      : { fansUrl: `mqtts://127.0.0.1:${fansPort}`, fansPort, authDir: dir, pidFile: join(dir, "mosquitto.pid") }),
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

/**
 * The shipped configuration with the cluster's ports and paths swapped for the test's. Throws when
 * a line it expects is missing or a cluster path is left over, so that a change to the shipped file
 * cannot silently stop being exercised.
 */
function swapForTest(shipped: string[], dir: string, port: number, fansPort: number): string[] {
  const listeners: Record<string, string> = {
    "listener 1883 0.0.0.0": `listener ${port} 127.0.0.1`,
    "listener 8883 0.0.0.0": `listener ${fansPort} 127.0.0.1`,
  };
  for (const line of Object.keys(listeners))
    if (!shipped.includes(line))
      throw new Error(`deploy/mosquitto/mosquitto.conf no longer has "${line}": update test/support/mosquitto.ts`);
  const swapped = shipped
    .filter((line) => !/^(persistence_location|log_dest) /.test(line))
    .map(
      (line) =>
        listeners[line] ??
        line
          .replace("/usr/lib/mosquitto_dynamic_security.so", DYNSEC_PLUGIN)
          .replaceAll("/mosquitto/auth/", `${dir}/`)
          .replaceAll("/mosquitto/run/", `${dir}/`)
          .replaceAll("/mosquitto/tls/", `${dir}/`),
    );
  const left = swapped.find((line) => line.includes("/mosquitto/"));
  if (left !== undefined)
    throw new Error(`deploy/mosquitto/mosquitto.conf: "${left}" names a cluster path the test does not provide`);
  return swapped;
}

/**
 * The password file, ACL and plugin file, made as `fanwatch broker-auth` makes them: the service
 * users from one file per user (as the Secret is mounted), the fans as active registry records
 * holding only their password's hash, the services' ACL deploy/mosquitto/acl.
 */
async function buildAuth(dir: string, security: ShippedSecurity): Promise<void> {
  await mkdir(join(dir, "users"));
  for (const [name, password] of Object.entries(security.users)) await writeFile(join(dir, "users", name), password);
  const fans: FanRecord[] = Object.entries(security.fans).map(([id, password]) => ({
    id,
    name: "",
    site: "",
    location: "",
    type: "",
    tags: [],
    state: "active",
    created: new Date().toISOString(),
    mqttPasswordHash: mosquittoHash(password),
  }));
  const files = renderBrokerAuth({
    services: await readServiceUsers(join(dir, "users")),
    fans,
    servicesAcl: await readFile(join(SHIPPED, "acl"), "utf8"),
    topic: "fan/messages",
    allowUnboundFans: security.allowUnboundFans ?? false,
  });
  await writeBrokerAuth(dir, files);
}

/** A throwaway CA (ca.crt) and a server certificate for 127.0.0.1 (tls.crt, tls.key, as in the Secret mosquitto-tls), made with openssl. */
function certificates(dir: string): string[] {
  const run = (args: string[]) => {
    const result = spawnSync("openssl", args, { cwd: dir });
    if (result.status !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr.toString()}`);
  };
  run([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=fanwatch test CA",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
  ]);
  run(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "tls.key", "-out", "tls.csr"]);
  writeFileSync(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  run([
    "x509",
    "-req",
    "-in",
    "tls.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    "san.ext",
    "-out",
    "tls.crt",
  ]);
  return [`certfile ${join(dir, "tls.crt")}`, `keyfile ${join(dir, "tls.key")}`];
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
  try {
    await eventually(
      `mosquitto to listen on ${port}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}); its log:`);
        return accepts(port);
      },
      { timeoutMs: 10_000, onError: "fail" },
    );
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  return child;
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
