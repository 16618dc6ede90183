import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { z } from "zod";
import { logLevelSetting } from "../../lib/infra/log-level.js";
import type { Logger } from "../../lib/infra/log.js";
import type { MqttSettings } from "../../lib/mqtt/settings.js";
import { readStack, type StackFunction } from "./stack.js";
import { serverOptionsFromEnv } from "../../templates/node22-ts/server.js";
import { ScaleLabelError } from "../../lib/errors.js";
import { readScaleLabels, type ScaleBounds } from "../../lib/openfaas/scaling.js";
import { readAutoscalerSettings } from "./autoscaler.js";
import { gatewayCredentials } from "./credentials.js";
import { ReplicaSet } from "./replica-set.js";
import { LocalGateway } from "./gateway.js";
import { readGatewayLimits } from "./guards.js";
import { DEFAULT_MODEL_DIR } from "../../functions/score/config.js";
import { ServiceBase } from "../../lib/infra/service.js";

const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/**
 * How much the local runs (`fanwatch start`, `fanwatch gateway`) and their functions log unless
 * LOG_LEVEL says: the console is for people, so warnings and worse.
 */
export const CONSOLE_LOG_LEVEL = "warn";

export interface GatewayRunOptions {
  port: number;
  /** 127.0.0.1 keeps the gateway to this machine; 0.0.0.0 opens it to the network. */
  host: string;
  stackFile: string;
  /** The broker the functions publish to. */
  mqtt: MqttSettings;
  /**
   * Each function's own login (fanwatch start's embedded broker): for the user its stack.yml
   * MQTT_USERNAME names, as in the cluster; none for a function that names none. Unset: every
   * function logs in with `mqtt`'s credentials.
   */
  functionMqtt?:
    ((name: string, user: string | undefined) => { username: string; password: string } | undefined) | undefined;
  /** The NATS server the health function keeps its state in; undefined: in memory (not durable). */
  natsUrl?: string | undefined;
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** Progress and every line a function prints. */
  say: (line: string) => void;
  /** How a function's line is shown by `say` (the log API keeps it as printed): on a terminal, readableLine. */
  renderLine?: ((line: string) => string) | undefined;
  /** Other routes (the web page), tried before answering 404. */
  extra?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

/**
 * The local gateway with every function of stack.yml running as a child process behind it: what
 * `fanwatch start` runs, and `fanwatch gateway` alone. start() says where it listens and the
 * /system credentials, and resolves once every function listens; drain() stops the autoscaler,
 * lets the functions finish what they hold, then closes the gateway.
 */
export class GatewayService extends ServiceBase {
  readonly name = "gateway";
  #gateway: LocalGateway | undefined;
  #functions: Array<{ set: ReplicaSet; min: number }> = [];
  #credentials: { user: string; password: string } | undefined;

  constructor(private readonly options: GatewayRunOptions) {
    super();
  }

  get url(): string {
    return this.#gateway?.url ?? "";
  }

  get credentials(): { user: string; password: string } {
    if (this.#credentials === undefined) throw new Error("the gateway has not started");
    return this.#credentials;
  }

  protected async onStart(): Promise<void> {
    const { options } = this;
    const { env, say } = options;
    const credentials = gatewayCredentials(env);
    this.#credentials = credentials;
    const stack = await readStack(options.stackFile, env);
    // Bad labels or settings stop the start before anything listens, saying which and why.
    const autoscaling = readAutoscalerSettings(env);
    const bounds = new Map(
      Object.entries(stack.functions).map(([name, spec]) => [name, scaleBounds(name, spec, options)] as const),
    );
    // This run's token: the gateway adds it to every call it forwards, and the functions answer no
    // call without it (their loopback ports are open to every program and page on this machine).
    const callerToken = randomBytes(32).toString("base64url");
    // The gateway listens first: its address goes into the functions' environment.
    const gateway = new LocalGateway({
      port: options.port,
      host: options.host,
      credentials,
      limits: readGatewayLimits(env),
      callerToken,
      log: options.log,
      ...(options.extra === undefined ? {} : { extra: options.extra }),
    });
    this.#gateway = gateway;
    await gateway.listen();
    say(`gateway on ${gateway.url} (/system/* user ${credentials.user}, password ${credentials.password})`);
    this.#functions = await Promise.all(
      Object.entries(stack.functions).map(async ([name, spec]) => {
        const login = options.functionMqtt?.(name, spec.environment.MQTT_USERNAME);
        const own = functionEnv(spec, {
          // A login of this run: its user name only, the password goes to the process alone (below).
          mqtt:
            options.functionMqtt === undefined
              ? options.mqtt
              : { url: options.mqtt.url, ...(login === undefined ? {} : { username: login.username }) },
          natsUrl: options.natsUrl,
          gatewayUrl: gateway.url,
          logLevel: logLevelSetting(env) ?? CONSOLE_LOG_LEVEL,
        });
        // The token is not one of the variables the /system API shows (`own`), nor is a login of this run's broker.
        const processEnv = {
          ...(options.functionMqtt === undefined ? env : withoutMqttLogin(env)),
          ...own,
          ...(login === undefined ? {} : { MQTT_PASSWORD: login.password }),
          FANWATCH_CALLER_TOKEN: callerToken,
        };
        const render = options.renderLine ?? ((line: string) => line);
        const set = new ReplicaSet({ name, env: processEnv, onLine: (fn, line) => say(`[${fn}] ${render(line)}`) });
        // The body limits its server reads from this environment; a malformed MAX_JSON_SIZE fails here as it would there.
        const { maxJsonSize = Infinity, maxRawSize = Infinity, rawBody = false } = serverOptionsFromEnv(processEnv);
        const scale = bounds.get(name) as ScaleBounds;
        gateway.add({
          name,
          spec,
          set,
          bounds: scale,
          env: own,
          envProcess: await templateProcess(spec.lang),
          bodyLimits: { maxJsonSize, maxRawSize, rawBody },
        });
        return { set, min: scale.min };
      }),
    );
    const functions = this.#functions;
    say(
      `starting ${functions.map(({ set, min }) => (min === 1 ? set.name : `${set.name} (${min} replicas)`)).join(" and ")}…`,
    );
    await Promise.all(functions.map(({ set, min }) => set.scaleTo(min)));
    gateway.startAutoscaler(autoscaling);
  }

  /** The functions finish what they hold (SIGTERM, as Kubernetes sends), then the gateway closes. */
  protected override async onDrain(): Promise<void> {
    this.#gateway?.stopAutoscaler();
    await Promise.all(this.#functions.map(({ set }) => set.stop()));
    await this.#gateway?.close();
  }

  protected async onClose(): Promise<void> {
    this.#gateway?.stopAutoscaler();
    await Promise.all(this.#functions.map(({ set }) => set.stop()));
    await this.#gateway?.close(0);
  }
}

/** A function's replicas from its scale labels; a label CE would refuse names the function and the stack file. */
function scaleBounds(name: string, spec: StackFunction, { natsUrl, stackFile, say }: GatewayRunOptions): ScaleBounds {
  let labelled: ScaleBounds;
  try {
    labelled = readScaleLabels(spec.labels);
  } catch (error) {
    if (error instanceof ScaleLabelError) throw new ScaleLabelError(`${name} in ${stackFile}: ${error.message}`);
    throw error;
  }
  // Without NATS a function that keeps its state there (health, named by its bucket) keeps it in
  // its process: replicas would each hold part of it, so it runs one. A function that only reads
  // from NATS (score follows the model registry) scales as before.
  if ((natsUrl ?? "") === "" && spec.environment.HEALTH_BUCKET !== undefined && labelled.max > 1) {
    say(`${name} keeps its state in memory without NATS: 1 replica, not autoscaled`);
    return { ...labelled, min: 1, max: 1, enabled: false };
  }
  return labelled;
}

/** What this run tells every function, instead of the cluster's addresses in stack.yml. */
interface LocalRun {
  mqtt: MqttSettings;
  /** undefined: no NATS here. */
  natsUrl: string | undefined;
  gatewayUrl: string;
  /** Unless stack.yml sets the function's own. */
  logLevel: string;
}

/**
 * The variables the runner gives a function (on top of the environment it inherits): its
 * stack.yml environment, with the addresses it names (in-cluster service names) replaced by this
 * machine's broker, NATS and gateway, and the MQTT credentials of this run rather than the
 * cluster's user name. A function process reads its settings from the environment (the OpenFaaS
 * contract), so this is where the typed values become variables.
 */
function functionEnv(spec: StackFunction, run: LocalRun): Record<string, string> {
  const { MQTT_USERNAME: _clusterUser, ...stackEnv } = spec.environment;
  const { mqtt, natsUrl, gatewayUrl } = run;
  return {
    LOG_LEVEL: run.logLevel,
    ...stackEnv,
    // The image's MODEL_DIR is relative to /home/app; here, to the repository.
    MODEL_DIR: join(REPO_ROOT, spec.environment.MODEL_DIR ?? DEFAULT_MODEL_DIR),
    MQTT_URL: mqtt.url,
    ...(mqtt.username === undefined ? {} : { MQTT_USERNAME: mqtt.username }),
    ...(mqtt.password === undefined ? {} : { MQTT_PASSWORD: mqtt.password }),
    // Empty when there is no NATS here, rather than stack.yml's cluster address: health then keeps its state in memory.
    NATS_URL: natsUrl ?? "",
    SCORE_URL: `${gatewayUrl}/function/score`,
    GATEWAY_URL: gatewayUrl,
  };
}

/** The environment without a login for another broker (yours, in MQTT_USERNAME…): a function logs in with its own. */
function withoutMqttLogin(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const rest = { ...env };
  for (const name of ["MQTT_USERNAME", "MQTT_USERNAME_FILE", "MQTT_PASSWORD", "MQTT_PASSWORD_FILE"]) delete rest[name];
  return rest;
}

const TemplateYml = z.object({ fprocess: z.string().optional() });

/** How the template starts a function (its template.yml's fprocess), if the repository has that template. */
async function templateProcess(lang: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(join(REPO_ROOT, "templates", lang, "template.yml"), "utf8");
  } catch {
    return undefined; // a template of faas-cli's store, not in this repository
  }
  return TemplateYml.parse(parse(text)).fprocess;
}
