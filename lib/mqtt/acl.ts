import { filtersOverlap, topicMatches } from "./topic-filter.js";
import { ConfigError } from "../errors.js";

/**
 * Mosquitto's ACL file (`acl_file`, mosquitto.conf(5)), read so that the embedded broker of
 * `fanwatch start` applies the very rules deploy/mosquitto/acl gives the production broker.
 *
 * The syntax, as Mosquitto 2.0 reads it:
 * - `# …` a comment (only at the start of a line: `#` inside a topic is a wildcard), blank lines;
 * - `user <name>`: the `topic` lines after it are that user's, up to the next `user` line;
 *   `topic` lines before the first `user` line are for anonymous clients;
 * - `topic [read|write|readwrite|deny] <topic>`: no access word means readwrite; `deny` refuses
 *   both and wins over any grant;
 * - `pattern [read|write|readwrite|deny] <topic>`: for every client wherever it stands, with `%u`
 *   the client's username and `%c` its client id (a pattern never matches for a client whose
 *   username or client id holds `+`, `#` or `/`, which could widen it).
 * The name and the topic are the rest of the line (they may hold spaces), trailing blanks removed.
 * Anything else is refused with the line's number, as Mosquitto refuses to start on it.
 */

export type AclAccess = "read" | "write" | "readwrite" | "deny";

export interface AclRule {
  readonly access: AclAccess;
  readonly topic: string;
  /** Where it was written (`deploy/mosquitto/acl:12`), for the log line of a refusal. */
  readonly source: string;
}

/** Who asks: the username (undefined: anonymous) and the client id. */
export interface AclClient {
  readonly username: string | undefined;
  readonly clientId: string;
}

const ACCESS = new Set<string>(["read", "write", "readwrite", "deny"]);

export class Acl {
  constructor(
    /** Rules for anonymous clients (before the first `user` line). */
    readonly anonymous: readonly AclRule[],
    readonly users: ReadonlyMap<string, readonly AclRule[]>,
    readonly patterns: readonly AclRule[],
  ) {}

  /** The rules of `text`; `source` names the file in messages. Throws ConfigError on a line Mosquitto would refuse. */
  static parse(text: string, source = "acl"): Acl {
    const anonymous: AclRule[] = [];
    const users = new Map<string, AclRule[]>();
    const patterns: AclRule[] = [];
    let current = anonymous;
    text.split(/\r?\n/).forEach((raw, index) => {
      const line = raw.replace(/[\s]+$/, "").replace(/^[\s]+/, "");
      if (line === "" || line.startsWith("#")) return;
      const where = `${source}:${index + 1}`;
      const [keyword = "", ...restWords] = line.split(/\s+/);
      const rest = line.slice(keyword.length).trimStart();
      if (keyword === "user") {
        if (rest === "") throw new ConfigError(`${where}: "user" without a name`);
        current = users.get(rest) ?? [];
        users.set(rest, current);
        return;
      }
      if (keyword !== "topic" && keyword !== "pattern")
        throw new ConfigError(`${where}: unknown keyword ${JSON.stringify(keyword)} (user, topic or pattern)`);
      const first = restWords[0] ?? "";
      const hasAccess = ACCESS.has(first);
      const access = (hasAccess ? first : "readwrite") as AclAccess;
      const topic = hasAccess ? rest.slice(first.length).trimStart() : rest;
      if (topic === "") throw new ConfigError(`${where}: "${keyword}" without a topic`);
      const problem = filterProblem(topic);
      if (problem !== undefined) throw new ConfigError(`${where}: ${problem}`);
      (keyword === "pattern" ? patterns : current).push({ access, topic, source: where });
    });
    return new Acl(anonymous, users, patterns);
  }

  /** This ACL and `other`'s rules together (a user in both has the rules of both). */
  merge(other: Acl): Acl {
    const users = new Map<string, AclRule[]>([...this.users].map(([u, r]) => [u, [...r]]));
    for (const [user, rules] of other.users) users.set(user, [...(users.get(user) ?? []), ...rules]);
    return new Acl([...this.anonymous, ...other.anonymous], users, [...this.patterns, ...other.patterns]);
  }

  /** The rules that apply to `client`, patterns with %u and %c filled in; `extra` are rules given in code (a fan's own). */
  rulesOf(client: AclClient, extra: readonly AclRule[] = []): AclRule[] {
    const own = client.username === undefined ? this.anonymous : (this.users.get(client.username) ?? []);
    const usable = (value: string | undefined) => value === undefined || !/[+#/]/.test(value);
    const patterns =
      usable(client.username) && usable(client.clientId)
        ? this.patterns
            .filter((p) => client.username !== undefined || !p.topic.includes("%u"))
            .map((p) => ({
              ...p,
              topic: p.topic.replaceAll("%u", client.username ?? "").replaceAll("%c", client.clientId),
            }))
        : [];
    return [...own, ...patterns, ...extra];
  }

  /** The rule that lets `client` publish to `topic`, or why not (undefined rule). */
  checkPublish(client: AclClient, topic: string, extra: readonly AclRule[] = []): AclDecision {
    const rules = this.rulesOf(client, extra);
    const denied = rules.find((r) => r.access === "deny" && topicMatches(r.topic, topic));
    if (denied !== undefined) return { allowed: false, rule: denied };
    const granted = rules.find(
      (r) => (r.access === "write" || r.access === "readwrite") && topicMatches(r.topic, topic),
    );
    return granted === undefined ? { allowed: false } : { allowed: true, rule: granted };
  }

  /**
   * The rule that lets `client` subscribe to `filter`: one whose topic covers every topic the
   * filter can match (a read of `fan/#` allows `fan/+`; a read of `fan/messages` does not allow
   * `fan/#` or `#`), as Mosquitto 2.0 checks a subscription. A deny rule refuses a filter it
   * overlaps at all.
   */
  checkSubscribe(client: AclClient, filter: string, extra: readonly AclRule[] = []): AclDecision {
    const rules = this.rulesOf(client, extra);
    const denied = rules.find((r) => r.access === "deny" && filtersOverlap(r.topic, filter));
    if (denied !== undefined) return { allowed: false, rule: denied };
    const granted = rules.find(
      (r) => (r.access === "read" || r.access === "readwrite") && filterCovers(r.topic, filter),
    );
    return granted === undefined ? { allowed: false } : { allowed: true, rule: granted };
  }
}

export interface AclDecision {
  allowed: boolean;
  /** The rule that granted it, or the deny rule that refused it; absent when no rule grants it. */
  rule?: AclRule;
}

/** Why `filter` is not a valid MQTT topic filter (a `#` not last, a wildcard inside a level), or undefined. */
export function filterProblem(filter: string): string | undefined {
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string;
    if (level === "#" && i !== levels.length - 1) return `"#" must be the last level: ${JSON.stringify(filter)}`;
    if (level.length > 1 && /[+#]/.test(level)) return `a wildcard must be a whole level: ${JSON.stringify(filter)}`;
  }
  return undefined;
}

/** Whether every topic `filter` matches is matched by `pattern` too. */
export function filterCovers(pattern: string, filter: string): boolean {
  const p = pattern.split("/");
  const f = filter.split("/");
  if (filter.startsWith("$") !== pattern.startsWith("$") && (p[0] === "+" || p[0] === "#")) return false;
  for (let i = 0; ; i++) {
    const a = p[i];
    const b = f[i];
    if (a === "#") return true;
    if (a === undefined || b === undefined) return a === b;
    if (b === "#") return false;
    if (a === "+") continue;
    if (b === "+" || a !== b) return false;
  }
}

// The ACL's matching is MQTT's (lib/mqtt/topic-filter.ts), shared with the connector's routes.
export { filtersOverlap, topicMatches };
