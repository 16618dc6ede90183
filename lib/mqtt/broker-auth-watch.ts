import { parseUntrustedJson } from "../infra/json.js";
import { readFile } from "node:fs/promises";
import type { MqttClient } from "mqtt";
import { z } from "zod";
import type { Health } from "../infra/health-server.js";
import type { Logger } from "../infra/log.js";
import { ServiceBase } from "../infra/service.js";
import type { FanRecord } from "../registry/fan-record.js";
import type { FanRegistry } from "../registry/registry.js";
import { CONTROL_TOPIC, renderBrokerAuth, type BrokerAuthFiles, type BrokerAuthInput } from "./broker-auth.js";
import { writeBrokerAuth } from "./broker-auth-files.js";
import { connectMqtt } from "./client.js";
import type { MqttSettings } from "./settings.js";

export interface BrokerAuthWatchOptions extends Omit<BrokerAuthInput, "fans"> {
  registry: FanRegistry;
  /** Where passwd, acl and dynamic-security.json go (the broker reads them there). */
  outDir: string;
  /** A copy of each rewrite, for the next start should NATS be away then (--fallback). */
  fallbackDir?: string;
  /** Mosquitto's pid_file: SIGHUP to that pid makes it reload the password file and the ACL. */
  pidFile: string;
  /** The broker, logged in as CONTROL_USER. */
  control: MqttSettings;
  log: Logger;
}

const ResponseSchema = z.object({
  responses: z.array(
    z.object({
      command: z.string(),
      error: z.string().optional(),
      data: z.object({ clients: z.array(z.string()).optional() }).optional(),
    }),
  ),
});
type Command = Record<string, unknown> & { command: string };

/**
 * `fanwatch broker-auth --watch`: keeps a running Mosquitto's users in step with the registry. On
 * each change it rewrites the three files and makes the broker take them (SIGHUP), in an order that
 * never lets a fan in unbound: a new fan's client id is bound (dynamic security plugin, over MQTT)
 * before its password is in the file; a fan that left loses its password and ACL lines (the reload
 * disconnects it) before the plugin forgets it.
 */
export class BrokerAuthWatcher extends ServiceBase {
  readonly name = "broker-auth";
  readonly #records = new Map<string, FanRecord>();
  /** Fan username → the hash the broker has, as last applied. */
  #applied = new Map<string, string>();
  #client: MqttClient | undefined;
  #watch: { stop(): Promise<void> } | undefined;
  #running: Promise<void> = Promise.resolve();
  #begun: Promise<void> = Promise.resolve();
  #again = false;
  #busy = false;
  #pending: ((response: z.infer<typeof ResponseSchema>) => void) | undefined;
  /** Applied rewrites, for tests and logs. */
  revision = 0;
  #lastAppliedAt: string | undefined;

  constructor(private readonly options: BrokerAuthWatchOptions) {
    super();
  }

  protected async onStart(): Promise<void> {
    const client = connectMqtt(this.options.control, {
      clientId: `broker-auth-${process.pid}`,
      onError: (error) => this.options.log.warn({ event: "control-error", err: error }, "broker control connection"),
    });
    this.#client = client;
    client.on("message", (_topic, payload) => {
      let body: unknown;
      try {
        body = parseUntrustedJson(payload);
      } catch (error) {
        // Only the broker writes its control responses; something else there is logged, never fatal.
        this.options.log.warn({ event: "control-response-invalid", err: error }, "a control response that is not JSON");
        return;
      }
      const parsed = ResponseSchema.safeParse(body);
      if (parsed.success) this.#pending?.(parsed.data);
    });
    // The broker starts beside this sidecar: start() returns at once and the rest waits for it (the
    // client retries each second; a refused login is logged by onError and retried too; /readyz
    // says 503 meanwhile), so that a stop signal is never held up by a broker that is not there.
    this.#begun = this.#begin(client).catch((error: unknown) => {
      if (this.stopping) return;
      this.options.log.error({ event: "start-failed", err: error }, "could not start watching");
      this.ended(error as Error);
    });
  }

  async #begin(client: MqttClient): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("end", () => reject(new Error("stopped before the broker answered")));
    });
    await client.subscribeAsync(`${CONTROL_TOPIC}/response`, { qos: 1 });
    // What the plugin knows now (written by the init run, or by an earlier watcher): the baseline,
    // hashes unknown ("?").
    const listed = await this.#control([{ command: "listClients" }]);
    const known = listed[0]?.data?.clients ?? [];
    this.#applied = new Map(known.filter((u) => u.startsWith("fan-")).map((u) => [u, "?"]));
    let initial = true;
    this.#watch = await this.options.registry.watch((id, record) => {
      if (record === undefined) this.#records.delete(id);
      else this.#records.set(id, record);
      if (!initial) this.#schedule();
    });
    initial = false;
    this.#schedule();
    await this.#running;
  }

  protected async onClose(): Promise<void> {
    await this.#watch?.stop();
    await this.#client?.endAsync(true);
  }

  /**
   * For /healthz: healthy while connected to the broker (a failed rewrite ends the process, and
   * the container restarts); ready once the registry as it was at start is applied.
   */
  health(): Health {
    const connected = this.#client?.connected === true;
    return {
      healthy: connected && !this.stopping,
      ready: this.revision > 0 && !this.stopping,
      details: {
        broker: connected ? "connected" : "disconnected",
        fans: this.#applied.size,
        revision: this.revision,
        ...(this.#lastAppliedAt === undefined ? {} : { lastAppliedAt: this.#lastAppliedAt }),
      },
    };
  }

  /** Resolves once every change seen so far is applied. */
  async settled(): Promise<void> {
    await this.#begun;
    while (this.#busy || this.#again) await this.#running;
  }

  #schedule(): void {
    if (this.#busy) {
      this.#again = true;
      return;
    }
    this.#busy = true;
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          await this.#apply();
        } while (this.#again && !this.stopping);
      } catch (error) {
        this.options.log.error({ event: "apply-failed", err: error }, "could not apply the registry to the broker");
        this.ended(error as Error);
      } finally {
        this.#busy = false;
      }
    })();
  }

  async #apply(): Promise<void> {
    const files: BrokerAuthFiles = renderBrokerAuth({ ...this.options, fans: [...this.#records.values()] });
    const wanted = new Map(
      [...this.#records.values()]
        .filter((f) => files.fanUsers.includes(`fan-${f.id}`))
        .map((f) => [`fan-${f.id}`, f.mqttPasswordHash as string]),
    );
    const added = [...wanted.keys()].filter((u) => !this.#applied.has(u));
    const gone = [...this.#applied.keys()].filter((u) => !wanted.has(u));
    // A new password (fans credentials again): the reload closes the old one's connection.
    const changed = [...wanted]
      .filter(([u, h]) => this.#applied.has(u) && ![h, "?"].includes(this.#applied.get(u) ?? ""))
      .map(([u]) => u);
    // Bound before it can log in: the plugin knows the fan before the password file does.
    if (added.length > 0)
      await this.#control(added.map((username) => ({ command: "createClient", username, clientid: username })));
    await writeBrokerAuth(this.options.outDir, files);
    if (this.options.fallbackDir !== undefined) await writeBrokerAuth(this.options.fallbackDir, files);
    // Mosquitto 2.0 rereads the password file and the ACL, and disconnects every client whose
    // login no longer holds (measured with 2.0.11): a retired fan, an old password.
    await this.#reload();
    // Only then does the plugin forget a fan that left (its binding outlived its password).
    if (gone.length > 0) await this.#control(gone.map((username) => ({ command: "deleteClient", username })));
    this.#applied = wanted;
    this.revision++;
    this.#lastAppliedAt = new Date().toISOString();
    this.options.log.info(
      {
        event: "applied",
        fans: wanted.size,
        added,
        removed: gone,
        changed,
        withoutCredentials: files.withoutCredentials,
      },
      `broker users: ${wanted.size} fans (+${added.length} -${gone.length} ~${changed.length})`,
    );
  }

  async #reload(): Promise<void> {
    const pid = Number((await readFile(this.options.pidFile, "utf8")).trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${this.options.pidFile} holds no pid`);
    process.kill(pid, "SIGHUP");
  }

  /** Sends commands to the plugin and waits for its answer; "already exists" and "not found" are what we wanted anyway. */
  async #control(commands: Command[]): Promise<z.infer<typeof ResponseSchema>["responses"]> {
    const client = this.#client;
    if (client === undefined) throw new Error("not connected to the broker");
    let timer: NodeJS.Timeout | undefined;
    const answer = new Promise<z.infer<typeof ResponseSchema>>((resolve, reject) => {
      this.#pending = resolve;
      // No answer: the plugin is not loaded, or CONTROL_USER may not use it (its role).
      timer = setTimeout(
        () =>
          reject(
            new Error(`no answer on ${CONTROL_TOPIC}/response within 10 s: is the dynamic security plugin loaded?`),
          ),
        10_000,
      );
    });
    await client.publishAsync(CONTROL_TOPIC, JSON.stringify({ commands }), { qos: 1 });
    const { responses } = await answer.finally(() => {
      clearTimeout(timer);
      this.#pending = undefined;
    });
    for (const r of responses)
      if (r.error !== undefined && !/already exists|not found/i.test(r.error))
        throw new Error(`the broker refused ${r.command}: ${r.error}`);
    return responses;
  }
}
