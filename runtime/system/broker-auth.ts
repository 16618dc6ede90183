import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Logger } from "../../lib/infra/log.js";
import type { Acl, AclRule } from "../../lib/mqtt/acl.js";
import type { FanRecord } from "../../lib/registry/fan-record.js";

/** A user's login on the embedded broker, made for one run. */
export interface BrokerLogin {
  username: string;
  password: string;
}

/** Who a connection is, once logged in. */
export interface BrokerIdentity {
  username: string;
  clientId: string;
  /** `ip:port`, for log lines. */
  address: string;
  /** Rules given in code on top of the ACL file's (a fan's own topic). */
  extra: readonly AclRule[];
}

/** MQTT 3.1.1 CONNACK return codes a refusal uses. */
export const IDENTIFIER_REJECTED = 2;
export const BAD_USERNAME_OR_PASSWORD = 4;
export const NOT_AUTHORIZED = 5;

export type LoginOutcome =
  | { ok: true; identity: BrokerIdentity }
  | { ok: false; returnCode: typeof IDENTIFIER_REJECTED | typeof BAD_USERNAME_OR_PASSWORD | typeof NOT_AUTHORIZED };

/**
 * Fans that log in as themselves (`fan-<id>`), from the device registry: an active fan with an
 * MQTT password hash (Mosquitto's `$7$`) may publish its readings on `<telemetry>/<id>`, and on
 * `<telemetry>` where unbound fans are allowed (ALLOW_UNBOUND_FANS).
 */
export interface FanLogins {
  record(id: string): FanRecord | undefined;
  /** Whether `password` is the one `hash` was made from. */
  verify(password: string, hash: string): Promise<boolean>;
  telemetryTopic: string;
  allowUnbound: boolean;
}

/** The prefix of a fan's username: fan `7` logs in as `fan-7`. */
export const FAN_USER_PREFIX = "fan-";

/** Client ids held at once at most: a client with credentials cannot grow the table without bound. */
const MAX_BINDINGS = 10_000;

interface Binding {
  username: string;
  /** A persistent session (clean = false) keeps its id bound for the rest of the run. */
  persistent: boolean;
  live: number;
}

/**
 * Who may log in to the embedded broker and with which client ids: the users issued for this run
 * (a random password each, like the gateway's), the registry's fans, nobody anonymous.
 *
 * Client ids are bound to users, so that no client can take over another's session (aedes, as
 * any broker, disconnects the earlier client of an id):
 * - a part's ids are claimed when its user is issued, as prefixes (`fanwatch-start-connector`
 *   for the connector's sessions and its reply connection, `predict-` for predict's replicas…):
 *   only that user may connect with an id that starts with one;
 * - any other id belongs to the user whose client first connected with it, while a client of
 *   that user is connected with it, and for the rest of the run once it held a persistent
 *   session (clean = false), whose queued messages are that user's.
 * - `fan-<id>` is fan `<id>`'s, and a fan connects with no other id.
 * A CONNECT with an id that belongs to another user is refused with "identifier rejected".
 */
export class BrokerAuth {
  readonly #users = new Map<string, { digest: Buffer; password: string }>();
  readonly #claims: Array<{ prefix: string; username: string }> = [];
  readonly #bindings = new Map<string, Binding>();
  #fans: FanLogins | undefined;

  constructor(private readonly options: { acl: Acl; fans?: FanLogins | undefined; log?: Logger | undefined }) {
    this.#fans = options.fans;
  }

  /** Lets the registry's fans log in from now on (the registry starts after the broker). */
  useFans(fans: FanLogins): void {
    this.#fans = fans;
  }

  get acl(): Acl {
    return this.options.acl;
  }

  /**
   * A password for `username` for this run (the same one when two parts share a user); the
   * client ids starting with one of `clientIdPrefixes` are this user's alone.
   */
  issue(username: string, clientIdPrefixes: readonly string[] = []): BrokerLogin {
    if (username === "" || username.startsWith(FAN_USER_PREFIX))
      throw new Error(`${JSON.stringify(username)}: not a user of the embedded broker (fans come from the registry)`);
    const user = this.#users.get(username) ?? {
      digest: Buffer.alloc(0),
      password: randomBytes(24).toString("base64url"),
    };
    user.digest = digest(user.password);
    this.#users.set(username, user);
    for (const prefix of clientIdPrefixes) this.#claims.push({ prefix, username });
    return { username, password: user.password };
  }

  /** Whether `username` logs in here (issued, or a fan's user name). */
  knows(username: string): boolean {
    return this.#users.has(username) || username.startsWith(FAN_USER_PREFIX);
  }

  /** A CONNECT: the login, then the client id's owner. Logs every refusal with the client id and address. */
  async login(
    connect: { clientId: string; clean: boolean; address: string },
    username: string | undefined,
    password: Buffer | undefined,
  ): Promise<LoginOutcome> {
    const { clientId, address } = connect;
    const refuse = (
      returnCode: typeof IDENTIFIER_REJECTED | typeof BAD_USERNAME_OR_PASSWORD | typeof NOT_AUTHORIZED,
      reason: string,
      fields: Record<string, unknown> = {},
    ): LoginOutcome => {
      this.options.log?.warn(
        { event: "mqtt_login_refused", clientId, username, address, reason, ...fields },
        `embedded broker: refused ${clientId} from ${address}${username === undefined ? "" : ` (user ${username})`}: ${reason}`,
      );
      return { ok: false, returnCode };
    };
    if (username === undefined || username === "")
      return refuse(NOT_AUTHORIZED, "no user name: anonymous clients are not allowed");
    const extra = await this.#checkPassword(username, password?.toString("utf8") ?? "");
    if (extra === undefined) return refuse(BAD_USERNAME_OR_PASSWORD, "bad user name or password");
    // A fan's only client id is its user name, as on the production broker (deploy/mosquitto).
    if (username.startsWith(FAN_USER_PREFIX) && clientId !== username)
      return refuse(IDENTIFIER_REJECTED, `a fan's client id must be its user name, ${username}`);
    const owner = this.#ownerOf(clientId);
    if (owner !== undefined && owner !== username)
      return refuse(IDENTIFIER_REJECTED, `client id ${clientId} belongs to user ${owner}`, { owner });
    const binding = this.#bindings.get(clientId);
    if (binding === undefined && this.#bindings.size >= MAX_BINDINGS)
      return refuse(NOT_AUTHORIZED, `${MAX_BINDINGS} client ids in use: no new one`);
    const bound = binding ?? { username, persistent: false, live: 0 };
    bound.live++;
    bound.persistent ||= !connect.clean;
    this.#bindings.set(clientId, bound);
    return { ok: true, identity: { username, clientId, address, extra } };
  }

  /** A connection that logged in has closed: its client id is free again unless it holds a persistent session. */
  closed(identity: BrokerIdentity): void {
    const binding = this.#bindings.get(identity.clientId);
    if (binding === undefined) return;
    binding.live--;
    if (binding.live <= 0 && !binding.persistent) this.#bindings.delete(identity.clientId);
  }

  /** Whether `identity` may publish to `topic`; a refusal is logged. */
  mayPublish(identity: BrokerIdentity, topic: string): boolean {
    // Topics starting with `$` are the broker's own ($SYS): nobody publishes there.
    const decision =
      topic.startsWith("$") || this.#retiredFan(identity)
        ? { allowed: false }
        : this.acl.checkPublish(identity, topic, identity.extra);
    if (!decision.allowed) this.#refused("publish", identity, topic, decision.rule);
    return decision.allowed;
  }

  /** Whether `identity` may subscribe to `filter`; a refusal is logged. */
  maySubscribe(identity: BrokerIdentity, filter: string): boolean {
    const decision = this.acl.checkSubscribe(identity, filter, identity.extra);
    if (!decision.allowed) this.#refused("subscribe", identity, filter, decision.rule);
    return decision.allowed;
  }

  /** A fan logged in that is no longer active (retired meanwhile): its connection publishes nothing more. */
  #retiredFan(identity: BrokerIdentity): boolean {
    const fans = this.#fans;
    if (fans === undefined || !identity.username.startsWith(FAN_USER_PREFIX) || this.#users.has(identity.username))
      return false;
    return fans.record(identity.username.slice(FAN_USER_PREFIX.length))?.state !== "active";
  }

  #refused(action: "publish" | "subscribe", identity: BrokerIdentity, topic: string, rule: AclRule | undefined): void {
    const why =
      rule === undefined
        ? `no rule lets user ${identity.username} ${action === "publish" ? "write" : "read"} it`
        : `denied by ${rule.source}`;
    this.options.log?.warn(
      {
        event: `mqtt_${action}_refused`,
        clientId: identity.clientId,
        username: identity.username,
        address: identity.address,
        topic,
        ...(rule === undefined ? {} : { rule: rule.source }),
      },
      `embedded broker: refused ${identity.username}'s ${action} ${action === "publish" ? "to" : "of"} ${topic} (client ${identity.clientId} from ${identity.address}): ${why}${action === "publish" ? "; connection closed" : ""}`,
    );
  }

  /** The rules given in code for `username` when its password is right (none for issued users), else undefined. */
  async #checkPassword(username: string, password: string): Promise<readonly AclRule[] | undefined> {
    const expected = this.#users.get(username);
    if (expected !== undefined) return timingSafeEqual(digest(password), expected.digest) ? [] : undefined;
    const fans = this.#fans;
    if (fans === undefined || !username.startsWith(FAN_USER_PREFIX)) return undefined;
    const id = username.slice(FAN_USER_PREFIX.length);
    const record = fans.record(id);
    if (record?.state !== "active" || record.mqttPasswordHash === undefined) return undefined;
    if (!(await fans.verify(password, record.mqttPasswordHash))) return undefined;
    const source = `the registry's fan ${id}`;
    return [
      { access: "write", topic: `${fans.telemetryTopic}/${id}`, source },
      ...(fans.allowUnbound ? [{ access: "write" as const, topic: fans.telemetryTopic, source }] : []),
    ];
  }

  /** The user a client id belongs to: a fan's own, by a claimed prefix, else by the binding of a client that holds it. */
  #ownerOf(clientId: string): string | undefined {
    if (clientId.startsWith(FAN_USER_PREFIX)) return clientId;
    let claim: { prefix: string; username: string } | undefined;
    for (const c of this.#claims)
      if (clientId.startsWith(c.prefix) && (claim === undefined || c.prefix.length > claim.prefix.length)) claim = c;
    return claim?.username ?? this.#bindings.get(clientId)?.username;
  }
}

/** Fixed-length, so that comparing takes the same time whatever the password's length. */
function digest(password: string): Buffer {
  return createHash("sha256").update(password, "utf8").digest();
}
