import type { FanRecord } from "../registry/fan-record.js";

/**
 * What Mosquitto needs to know about who may log in and do what (docs/deploy.md, "Identities"):
 * the password file, the ACL and the dynamic security plugin's client list, made from the service
 * users and the registry's active fans. Pure: broker-auth-files.ts reads and writes, broker-auth-
 * watch.ts keeps a running broker current.
 */

/** The service user that `fanwatch broker-auth --watch` logs in as, to bind new fans' client ids at once. */
export const CONTROL_USER = "broker-auth";
/** Where the dynamic security plugin takes commands (Mosquitto 2.0). */
export const CONTROL_TOPIC = "$CONTROL/dynamic-security/v1";

/** A fan's MQTT username, and the only client id it may use on either listener. */
export function fanUsername(id: string): string {
  return `fan-${id}`;
}

export interface ServiceUser {
  name: string;
  /** Its `$7$` hash (broker-auth-files.ts hashes a plain password once, at load). */
  hash: string;
}

export interface BrokerAuthInput {
  services: readonly ServiceUser[];
  /** Every record of the registry; only active fans with a password hash become users. */
  fans: readonly FanRecord[];
  /** The services' ACL (deploy/mosquitto/acl), kept as it is at the top. */
  servicesAcl: string;
  /** TELEMETRY_TOPIC: a fan writes `<topic>/<id>`. */
  topic: string;
  /** ALLOW_UNBOUND_FANS: a fan may also write the reference topic itself (during a migration). */
  allowUnboundFans: boolean;
}

export interface BrokerAuthFiles {
  passwd: string;
  acl: string;
  /** The dynamic security plugin's configuration (JSON): each fan's client id bound to its username. */
  dynsec: string;
  /** Usernames of the fans let in, sorted. */
  fanUsers: string[];
  /** Active fans left out because they have no password hash yet (`fanwatch fans credentials ID`). */
  withoutCredentials: string[];
}

/** The fans that get a user: active, with a password hash. */
export function boundFans(fans: readonly FanRecord[]): FanRecord[] {
  return fans
    .filter((f) => f.state === "active" && f.mqttPasswordHash !== undefined)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export function renderBrokerAuth(input: BrokerAuthInput): BrokerAuthFiles {
  for (const service of input.services)
    if (service.name.startsWith("fan-"))
      throw new Error(`service user ${service.name}: names starting with fan- are for fans of the registry`);
  const fans = boundFans(input.fans);
  const passwd = [
    ...input.services.map((s) => `${s.name}:${s.hash}`),
    ...fans.map((f) => `${fanUsername(f.id)}:${f.mqttPasswordHash as string}`),
  ];
  const acl = [
    input.servicesAcl.trimEnd(),
    "",
    "# Registered fans (fanwatch broker-auth, from the registry): each publishes only as itself.",
  ];
  for (const fan of fans) {
    acl.push("", `user ${fanUsername(fan.id)}`, `topic write ${input.topic}/${fan.id}`);
    if (input.allowUnboundFans) acl.push(`topic write ${input.topic}`);
  }
  return {
    passwd: passwd.join("\n") + "\n",
    acl: acl.join("\n") + "\n",
    dynsec: JSON.stringify(dynsecConfig(fans.map((f) => fanUsername(f.id))), null, 1) + "\n",
    fanUsers: fans.map((f) => fanUsername(f.id)),
    withoutCredentials: input.fans
      .filter((f) => f.state === "active" && f.mqttPasswordHash === undefined)
      .map((f) => f.id),
  };
}

/**
 * The dynamic security plugin only binds client ids here: each fan is a client without a password
 * and without roles, so the plugin refuses it unless its client id is its username and otherwise
 * defers to the password file and the ACL (measured with Mosquitto 2.0.11: a client without a
 * password defers, and deny-by-default ACL access defers too). CONTROL_USER's role lets broker-auth
 * --watch add and remove fans while the broker runs, since SIGHUP does not reload this file.
 */
function dynsecConfig(fanUsers: string[]): unknown {
  const own = (acltype: string, topic: string) => ({ acltype, topic, allow: true });
  return {
    defaultACLAccess: { publishClientSend: false, publishClientReceive: false, subscribe: false, unsubscribe: true },
    clients: [
      { username: CONTROL_USER, roles: [{ rolename: CONTROL_USER }] },
      ...fanUsers.map((username) => ({ username, clientid: username, roles: [] })),
    ],
    groups: [],
    roles: [
      {
        rolename: CONTROL_USER,
        acls: [
          own("publishClientSend", CONTROL_TOPIC),
          own("subscribePattern", `${CONTROL_TOPIC}/response`),
          own("publishClientReceive", `${CONTROL_TOPIC}/response`),
        ],
      },
    ],
  };
}
