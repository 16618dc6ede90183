import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { defineSettings, readSettings } from "../../lib/infra/settings.js";
import { ServiceBase } from "../../lib/infra/service.js";
import { RegistryCache } from "../../lib/registry/cache.js";
import type { FanRegistry } from "../../lib/registry/registry.js";
import type { Logger } from "../../lib/infra/log.js";
import { Acl } from "../../lib/mqtt/acl.js";
import type { MqttSettings } from "../../lib/mqtt/settings.js";
import { BrokerAuth, type BrokerLogin, type FanLogins } from "./broker-auth.js";

const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The production broker's ACL, which the embedded broker applies as it is. */
export const SHIPPED_ACL = join(REPO_ROOT, "deploy", "mosquitto", "acl");

/** The user a person's tools log in as (mosquitto_sub, fanwatch deadletters): not in the production ACL. */
export const OPERATOR_USER = "operator";

export const DEFAULT_OPERATOR_FILE = ".fanwatch/broker-operator-password";

export const BROKER_USER_SETTINGS = defineSettings({
  BROKER_OPERATOR_FILE: {
    env: ["BROKER_OPERATOR_FILE"],
    help: "where fanwatch start writes the embedded broker's password of user operator for this run (mode 0600), for your own MQTT tools; removed at stop",
    default: DEFAULT_OPERATOR_FILE,
    schema: z.string().min(1).default(DEFAULT_OPERATOR_FILE),
  },
});

/**
 * The operator's rules: read every topic, publish readings (as a fan would, to try the pipeline by
 * hand or replay dead-lettered readings), never predictions, transitions or dead letters.
 */
function operatorAcl(telemetry: string): Acl {
  return Acl.parse(
    [`user ${OPERATOR_USER}`, "topic read #", `topic write ${telemetry}`, `topic write ${telemetry}/+`].join("\n"),
    "fanwatch start's operator",
  );
}

/** Who each part of `fanwatch start` logs in as: its user in deploy/mosquitto/acl, and its client ids. */
export const PART_USERS = {
  connector: "connector",
  view: "page",
  writer: "writer",
  simulator: "simulator",
} as const;
export type Part = keyof typeof PART_USERS;

export interface StartBrokerUsers {
  auth: BrokerAuth;
  /** The broker settings `part` connects with: the broker's address with its user's login. */
  settingsOf(part: Part, base: MqttSettings): MqttSettings;
  /** A function's login: the user its stack.yml MQTT_USERNAME names (the cluster's), its replicas' client ids `<name>-…`. */
  functionLogin: (name: string, user: string | undefined) => BrokerLogin | undefined;
  /** Where the operator's password is (absolute). */
  operatorFile: string;
  /** Removes the operator's file. */
  remove(): Promise<void>;
}

/**
 * The embedded broker's users for one run of `fanwatch start`: a random password for each part
 * (like the gateway's for /system), the shipped ACL's rules, and the operator's password written
 * to a file only this OS user can read.
 */
export async function startBrokerUsers(options: {
  env: NodeJS.ProcessEnv;
  telemetryTopic: string;
  clientIds: Record<Part, string>;
  fans?: FanLogins | undefined;
  log: Logger;
  aclFile?: string;
}): Promise<StartBrokerUsers> {
  const aclFile = options.aclFile ?? SHIPPED_ACL;
  const acl = Acl.parse(await readFile(aclFile, "utf8"), "deploy/mosquitto/acl").merge(
    operatorAcl(options.telemetryTopic),
  );
  const auth = new BrokerAuth({ acl, fans: options.fans, log: options.log });
  const logins = new Map<Part, BrokerLogin>();
  for (const part of Object.keys(PART_USERS) as Part[])
    logins.set(part, auth.issue(PART_USERS[part], [options.clientIds[part]]));
  const operator = auth.issue(OPERATOR_USER);
  const operatorFile = resolve(readSettings(BROKER_USER_SETTINGS, options.env).BROKER_OPERATOR_FILE);
  await writePrivate(operatorFile, `${operator.password}\n`);
  return {
    auth,
    settingsOf: (part, base) => {
      const { username, password } = logins.get(part) as BrokerLogin;
      return { ...base, username, password };
    },
    functionLogin: (name, user) => (user === undefined || user === "" ? undefined : auth.issue(user, [`${name}-`])),
    operatorFile,
    remove: () => rm(operatorFile, { force: true }),
  };
}

/** Writes `text` to `file` readable by this OS user alone: a new file, mode 0600, renamed over any old one. */
async function writePrivate(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  await rm(temporary, { force: true });
  await writeFile(temporary, text, { mode: 0o600, flag: "wx" });
  await rename(temporary, file);
}

/**
 * The registry's fans as users of the embedded broker (BrokerAuth's FanLogins): a watched cache of
 * the registry, so that a login or a publish looks a fan up in memory, and a fan retired or given a
 * new password is known at once.
 */
export class FanLoginsService extends ServiceBase {
  readonly name = "broker fan logins";
  #cache: RegistryCache | undefined;

  constructor(
    private readonly options: {
      auth: BrokerAuth;
      registry: FanRegistry;
      /** Whether a password matches a fan's `$7$` hash (Mosquitto's PBKDF2-SHA512). */
      verify: (password: string, hash: string) => boolean;
      telemetryTopic: string;
      allowUnbound: boolean;
    },
  ) {
    super();
  }

  protected async onStart(): Promise<void> {
    const { auth, registry, verify, telemetryTopic, allowUnbound } = this.options;
    const cache = new RegistryCache(registry);
    await cache.start();
    this.#cache = cache;
    auth.useFans({
      record: (id) => cache.get(id),
      verify: async (password, hash) => verify(password, hash),
      telemetryTopic,
      allowUnbound,
    });
  }

  protected async onClose(): Promise<void> {
    await this.#cache?.stop();
  }
}
