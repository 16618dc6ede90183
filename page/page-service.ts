import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { MqttClient } from "mqtt";
import { ConfigError } from "../lib/errors.js";
import type { Registry } from "prom-client";
import { readSecret } from "../lib/infra/settings.js";
import { join } from "node:path";
import type { Topics } from "../lib/infra/config.js";
import { AllowedHosts } from "../lib/infra/http/allowed-hosts.js";
import { basicAuthHeader } from "../lib/infra/http/basic-auth.js";
import { HttpClient } from "../lib/infra/http/client.js";
import { serverCloser, type ServerCloser } from "../lib/infra/http/close.js";
import { sendErrorCode } from "../lib/infra/http/error-answer.js";
import type { Logger } from "../lib/infra/log.js";
import { connectMqtt } from "../lib/mqtt/client.js";
import type { MqttSettings } from "../lib/mqtt/settings.js";
import { ServiceBase } from "../lib/infra/service.js";
import type { Access } from "./access/access.js";
import { createAccess } from "./access/create.js";
import { TrustedProxies } from "./access/peers.js";
import type { PageConfig } from "./config.js";
import { FleetView } from "./fleet-view.js";
import { PageApi } from "./page-api.js";
import { pageMetrics } from "./page-metrics.js";
import { WebPage } from "./web-page.js";
import { RegistryCache } from "../lib/registry/cache.js";
import { RegistryLink } from "./registry-link.js";
import type { FanRegistry } from "../lib/registry/registry.js";
import { ModelsLink, type OpenedModels } from "./models-link.js";

export interface PageServiceOptions {
  config: PageConfig;
  topics: Topics;
  /** The broker the fleet view reads; undefined: none (the records from health only). */
  mqtt: MqttSettings | undefined;
  log: Logger;
  /** Between two frames of the event streams (tests make it short). @default 1000 */
  frameIntervalMs?: number;
  /**
   * The fan registry (NATS_URL's, `fanwatch page` opens it): the counts are the registry's and
   * admins manage fans on the page. Closed with the page. None: fans counted as seen, no Fans panel.
   */
  registry?: FanRegistry | undefined;
  /**
   * Opens the fan registry (`fanwatch page` with NATS_URL), in the background and again every 5 s
   * until NATS lets it (registry-link.ts): the page serves while NATS is away, counting fans as seen.
   */
  openRegistry?: (() => Promise<FanRegistry>) | undefined;
  /**
   * Opens the model registry (`fanwatch page` with NATS_URL), in the background and again every 5 s
   * until NATS lets it (models-link.ts): the Models panel shows SITE's models. None: it says score
   * serves MODEL_DIR.
   */
  openModels?: (() => Promise<OpenedModels>) | undefined;
}

/**
 * `fanwatch page`: the fleet page as a service of its own (docs/page.md). The fleet view reads
 * readings, predictions and transitions from MQTT and every fan's record from health (HEALTH_URL);
 * the page serves it with sign-in, passes the signed-in user's actions on to health in a header
 * signed with PAGE_USER_SECRET, and answers /healthz and /metrics. Every request's Host is checked
 * first (PAGE_HOSTS): a page that other sites' names can reach is open to DNS rebinding.
 */
export class PageService extends ServiceBase {
  readonly name = "page";
  readonly access: Access;
  readonly fleet: FleetView;
  readonly #o: PageServiceOptions;
  readonly #page: WebPage;
  readonly #metrics: Registry;
  readonly #hosts: AllowedHosts;
  readonly #server: Server;
  readonly #closer: ServerCloser;
  /** /metrics alone, on PAGE_METRICS_PORT when set. */
  readonly #metricsServer: Server | undefined;
  readonly #metricsCloser: ServerCloser | undefined;
  #viewer: MqttClient | undefined;
  readonly #registryCache: RegistryCache | undefined;
  readonly #registryLink: RegistryLink | undefined;
  readonly #models: ModelsLink | undefined;

  constructor(options: PageServiceOptions) {
    super();
    this.#o = options;
    const { config, log } = options;
    this.access = createAccess(config, log);
    // Readings from predictions: the connector lets only registered fans' readings through.
    this.fleet = new FleetView(options.topics, { readingsFrom: "predictions" });
    if (options.registry !== undefined) {
      this.#registryCache = new RegistryCache(options.registry);
      this.fleet.useRegistry(this.#registryCache);
    } else if (options.openRegistry !== undefined) {
      this.#registryLink = new RegistryLink(options.openRegistry, log, (cache) => this.fleet.useRegistry(cache));
      this.fleet.awaitRegistry();
    }
    this.#models = options.openModels === undefined ? undefined : new ModelsLink(options.openModels, config.site, log);
    const link = this.#registryLink;
    const alertmanagers = new TrustedProxies(config.alertmanagerFrom);
    const api = new PageApi(this.access, {
      healthUrl: config.healthUrl,
      userSecret: config.userSecret,
      client: new HttpClient({ maxSockets: 16 }),
      log,
      registry: link === undefined ? options.registry : () => link.registry,
      models: this.#models,
    });
    this.#page = new WebPage(this.fleet, {
      access: this.access,
      api,
      maxStreams: config.maxStreams,
      maxStreamsPerUser: config.maxStreamsPerUser,
      receiverAllowed: (req) => alertmanagers.trusts(req),
      ...(options.frameIntervalMs === undefined ? {} : { intervalMs: options.frameIntervalMs }),
    });
    this.#metrics = pageMetrics(this.#page, this.access);
    this.#hosts = new AllowedHosts({ names: config.hosts, setting: "PAGE_HOSTS" });
    const tls = config.tls;
    this.#server =
      tls === undefined
        ? createServer(this.#serve)
        : createHttpsServer(
            {
              cert: readTlsFile(tls.certFile, "PAGE_TLS_CERT_FILE"),
              key: readTlsFile(tls.keyFile, "PAGE_TLS_KEY_FILE"),
            },
            this.#serve,
          );
    this.#closer = serverCloser(this.#server);
    if (config.metricsPort !== undefined) {
      this.#metricsServer = createServer((req, res) => {
        const path = new URL(req.url ?? "/", "http://page").pathname;
        if (path === "/metrics") this.#sendMetrics(res);
        else sendErrorCode(res, "FANWATCH_NOT_FOUND", `no route ${req.method} ${path}: this port serves /metrics only`);
      });
      this.#metricsCloser = serverCloser(this.#metricsServer);
    }
  }

  /** The port /metrics is on: PAGE_METRICS_PORT's (or the one it was given for 0), else the page's. */
  get metricsPort(): number {
    if (this.#metricsServer === undefined) return this.port;
    return (this.#metricsServer.address() as AddressInfo | null)?.port ?? this.#o.config.metricsPort ?? 0;
  }

  /** The port it listens on (PAGE_PORT, or the one it was given for 0). */
  get port(): number {
    return (this.#server.address() as AddressInfo | null)?.port ?? this.#o.config.port;
  }

  /** The fan registry: "none" (no NATS_URL), "waiting" (NATS cannot be read yet: counted as seen), "watched". */
  get registryState(): "none" | "waiting" | "watched" {
    if (this.#registryLink !== undefined) return this.#registryLink.state;
    return this.#registryCache === undefined ? "none" : "watched";
  }

  /** The model registry: "none" (no NATS_URL), "waiting" (NATS cannot be read yet), "open". */
  get modelsState(): "none" | "waiting" | "open" {
    return this.#models?.state ?? "none";
  }

  /** Resolves once the model registry opened in the background is open (tests). */
  modelsOpened(): Promise<void> {
    return this.#models?.opened() ?? Promise.resolve();
  }

  /** Resolves once the registry opened in the background is watched (tests). */
  registryWatched(): Promise<void> {
    return this.#registryLink?.watched() ?? Promise.resolve();
  }

  get url(): string {
    const host = this.#o.config.host;
    const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
    return `${this.#o.config.tls === undefined ? "http" : "https"}://${shown}:${this.port}`;
  }

  protected async onStart(): Promise<void> {
    const { config, log, mqtt } = this.#o;
    await this.#registryCache?.start();
    this.#registryLink?.start();
    await this.#models?.start();
    await this.#page.start();
    await listen(this.#server, config.port, config.host);
    if (this.#metricsServer !== undefined) await listen(this.#metricsServer, config.metricsPort ?? 0, config.host);
    if (mqtt !== undefined) {
      const viewer = connectMqtt(mqtt, {
        clientId: `fanwatch-page-${process.pid}`,
        onError: (e) => log.warn({ event: "mqtt_error", err: e.message }, "page: MQTT error"),
      });
      this.#viewer = viewer;
      // Not waited for: the page serves health's records while the broker is away, and the client reconnects.
      this.fleet
        .subscribe(viewer)
        .catch((e: unknown) => log.warn({ event: "mqtt_subscribe_failed", err: String(e) }, "page: cannot subscribe"));
    }
    void this.fleet.readHealthFrom(config.healthUrl);
    if (config.functionsUrl !== undefined) {
      const user = readSecret(join(config.secretPath, "basic-auth-user"));
      const password = readSecret(join(config.secretPath, "basic-auth-password"));
      const headers =
        user === undefined || password === undefined
          ? undefined
          : { authorization: basicAuthHeader({ user, password }) };
      void this.fleet.readReplicasFrom(config.functionsUrl, headers === undefined ? {} : { headers });
    }
    log.info(
      {
        event: "page_started",
        url: this.url,
        signIn: this.access.mode,
        health: config.healthUrl,
        registry: this.registryState,
      },
      `page on ${this.url}/ui/ (sign-in ${this.access.mode})`,
    );
  }

  protected override async onDrain(): Promise<void> {
    await this.#page.drain();
    await this.close();
  }

  protected async onClose(): Promise<void> {
    this.fleet.stop();
    await this.#page.close();
    await this.#closer.close(1_000);
    await this.#metricsCloser?.close(1_000);
    await this.#viewer?.endAsync(true);
    await this.#registryCache?.stop();
    await this.#o.registry?.close();
    await this.#registryLink?.close();
    await this.#models?.close();
  }

  #sendMetrics(res: ServerResponse): void {
    void this.#metrics
      .metrics()
      .then((text) => res.writeHead(200, { "content-type": this.#metrics.contentType }).end(text));
  }

  readonly #serve = (req: IncomingMessage, res: ServerResponse): void => {
    const refused = this.#hosts.refusal(req.headers.host);
    if (refused !== undefined) return sendErrorCode(res, "FANWATCH_HOST_REFUSED", refused);
    const path = new URL(req.url ?? "/", "http://page").pathname;
    if (path === "/healthz" || path === "/livez") {
      const body = {
        status: "ok",
        signIn: this.access.mode,
        mqtt: this.#viewer?.connected ?? null,
        registry: this.registryState,
        models: this.modelsState,
        ...this.#page.stats(),
      };
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    }
    if (path === "/metrics" && this.#metricsServer === undefined) return this.#sendMetrics(res);
    if (this.#page.handle(req, res) || res.headersSent) return;
    sendErrorCode(res, "FANWATCH_NOT_FOUND", `no route ${req.method} ${path}: the page is at /ui/`);
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function readTlsFile(file: string, setting: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfigError(`cannot read ${setting} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}
