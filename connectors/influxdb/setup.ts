import { setTimeout as sleep } from "node:timers/promises";
import { ConfigError, InfluxQueryError, InfluxUnavailableError } from "../../lib/errors.js";
import { basicAuthHeader } from "../../lib/infra/http/basic-auth.js";
import { parseUntrustedJson } from "../../lib/infra/json.js";
import { backfill, floorMinute, oldestRawShard, rows, shownMs, type Run } from "./backfill.js";
import {
  createContinuousQuery,
  DOWNSAMPLED_POLICY,
  DOWNSAMPLES,
  RAW_POLICY,
  sameQuery,
  shardDuration,
  shownDuration,
} from "./downsampling.js";
import { request, type Series } from "./influx-http.js";
import type { Credentials, SetupPlan } from "./setup-config.js";

/**
 * `fanwatch influx-setup`: brings an InfluxDB 1.x to what fanwatch needs, changing only what
 * differs, so that it can run at every start (a Job in K3s, a service in faasd's compose) and on an
 * InfluxDB that already holds data: the admin (when InfluxDB has none yet), database `fan`, the
 * downsampled policy and its continuous queries, the bounded raw policy (its history downsampled
 * first, keepHistory), a write user and a read user with their passwords and grants. Reports and
 * returns what it changed, one line each.
 */
export async function setupInflux(
  plan: SetupPlan,
  options: { backfill?: string; report?: (line: string) => void } = {},
): Promise<string[]> {
  await waitForPing(plan.url, plan.waitMs);
  const changes: string[] = [];
  const say = (line: string) => {
    changes.push(line);
    options.report?.(line);
  };
  const run: Run = (statement, opts = {}) => query(plan.url, statement, plan.admin, opts.timeoutMs);
  const change = async (statement: string, what: string) => {
    await run(statement);
    say(what);
  };

  // The admin: InfluxDB with authentication on and no user yet takes only the statement that
  // creates the first admin (the image's INFLUXDB_ADMIN_USER does the same at first start).
  const users = await run("SHOW USERS").catch(async (error: unknown) => {
    if (!(error instanceof InfluxQueryError) || !/create admin user first/.test(error.message)) throw error;
    await change(adminStatement(plan.admin), `created the admin ${plan.admin.username}`);
    return run("SHOW USERS");
  });
  const existing = new Set(rows(users).map((r) => String(r[0])));

  await run(`CREATE DATABASE ${q(plan.database)}`); // a no-op when it exists
  const policies = new Map(rows(await run(`SHOW RETENTION POLICIES ON ${q(plan.database)}`)).map((r) => [r[0], r]));
  /** Creates or alters a policy; false when it is as wanted already. */
  const policy = async (name: string, duration: string, isDefault: boolean): Promise<boolean> => {
    const shown = policies.get(name);
    const shard = shardDuration(duration);
    const spec = `DURATION ${duration} REPLICATION 1 SHARD DURATION ${shard}${isDefault ? " DEFAULT" : ""}`;
    if (shown === undefined) {
      await change(
        `CREATE RETENTION POLICY ${q(name)} ON ${q(plan.database)} ${spec}`,
        `created policy ${name} (${duration})`,
      );
      return true;
    }
    if (shown[1] === shownDuration(duration) && shown[2] === shownDuration(shard) && (!isDefault || shown[4] === true))
      return false;
    await change(
      `ALTER RETENTION POLICY ${q(name)} ON ${q(plan.database)} ${spec}`,
      `set policy ${name} to ${duration}`,
    );
    return true;
  };

  // Where the aggregates go, and the continuous queries that write them, before the raw policy is
  // bounded: from then on no raw point leaves without its minute downsampled.
  await policy(DOWNSAMPLED_POLICY, plan.downsampledRetention, false);
  const cqs = new Map<string, string>();
  for (const series of await run("SHOW CONTINUOUS QUERIES"))
    if (series.name === plan.database) for (const [name, text] of rows([series])) cqs.set(String(name), String(text));
  for (const d of DOWNSAMPLES) {
    const wanted = createContinuousQuery(plan.database, d);
    const shown = cqs.get(d.name);
    if (shown !== undefined && sameQuery(shown, wanted)) continue;
    // A continuous query cannot be altered: replaced.
    if (shown !== undefined) await run(`DROP CONTINUOUS QUERY ${q(d.name)} ON ${q(plan.database)}`);
    await change(wanted, `${shown === undefined ? "created" : "replaced"} continuous query ${d.name}`);
  }
  await keepHistory(run, plan, policies.get(RAW_POLICY)?.[1], say);
  await policy(RAW_POLICY, plan.rawRetention, true);

  for (const [user, privilege] of [
    [plan.writer, "WRITE"],
    [plan.reader, "READ"],
  ] as const) {
    if (user === undefined) continue;
    if (!existing.has(user.username))
      await change(
        `CREATE USER ${q(user.username)} WITH PASSWORD ${literal(user.password)}`,
        `created user ${user.username}`,
      );
    else if (!(await passwordWorks(plan.url, user)))
      await change(
        `SET PASSWORD FOR ${q(user.username)} = ${literal(user.password)}`,
        `set the password of ${user.username}`,
      );
    const grants = rows(await run(`SHOW GRANTS FOR ${q(user.username)}`));
    const held = grants.find((r) => r[0] === plan.database)?.[1];
    if (held === privilege) continue;
    if (held !== undefined && held !== "NO PRIVILEGES")
      await run(`REVOKE ALL PRIVILEGES ON ${q(plan.database)} FROM ${q(user.username)}`);
    await change(
      `GRANT ${privilege} ON ${q(plan.database)} TO ${q(user.username)}`,
      `granted ${privilege} to ${user.username}`,
    );
  }

  if (options.backfill !== undefined) {
    const to = floorMinute(Date.now());
    await backfill(run, plan.database, { from: to - shownMs(shownDuration(options.backfill)), to }, say);
  }
  return changes;
}

/**
 * Before the raw policy is shortened, downsamples the raw points it is about to drop, so that an
 * upgrade keeps its history as 1-minute aggregates. Coming from an unbounded `autogen` (a site
 * set up before fanwatch bounded it, or a run cut short before it could), no raw point has been
 * downsampled but the last 10 minutes' (the continuous queries were not there), so it is every
 * raw point up to this minute; from a bounded one, the continuous queries have covered what is
 * kept, so only what the shorter duration drops. Aggregates older than the downsampled policy's
 * duration would be refused: not written. Each run recomputes the same aggregates, so a run cut
 * short is simply repeated by the next (`autogen` is altered only after the backfill).
 */
async function keepHistory(run: Run, plan: SetupPlan, shownRaw: unknown, say: (line: string) => void): Promise<void> {
  const now = Date.now();
  const current = shownRaw === undefined ? Infinity : shownMs(shownRaw);
  const wanted = shownMs(shownDuration(plan.rawRetention));
  if (wanted >= current) return;
  const oldest = await oldestRawShard(run, plan.database);
  const to = floorMinute(current === Infinity ? now : now - wanted);
  if (oldest === undefined || oldest >= to) return;
  // Whole minutes from the oldest kept one: the downsampled policy's start, rounded up.
  const keptFrom = Math.ceil((now - shownMs(shownDuration(plan.downsampledRetention))) / 60_000) * 60_000;
  const from = Math.max(oldest, keptFrom);
  if (from >= to) return;
  const shown = (ms: number) => new Date(ms).toISOString().replace(":00.000Z", "Z");
  say(
    `downsampling the raw points from ${shown(from)} to ${shown(to)} into ${DOWNSAMPLED_POLICY}, ` +
      `a day at a time, before ${RAW_POLICY} is cut to ${plan.rawRetention}`,
  );
  await backfill(run, plan.database, { from, to }, say);
}

function adminStatement(admin: Credentials): string {
  return `CREATE USER ${q(admin.username)} WITH PASSWORD ${literal(admin.password)} WITH ALL PRIVILEGES`;
}

/** A user whose password InfluxDB takes: authentication succeeds (401 otherwise). */
async function passwordWorks(url: string, user: Credentials): Promise<boolean> {
  const answer = await request(`${url}/query?q=${encodeURIComponent("SHOW DATABASES")}`, {
    method: "GET",
    headers: { authorization: basicAuthHeader({ user: user.username, password: user.password }) },
  });
  return answer.status !== 401;
}

async function query(
  url: string,
  statement: string,
  as: Credentials | undefined,
  timeoutMs?: number,
): Promise<Series[]> {
  const answer = await request(`${url}/query`, {
    method: "POST",
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      ...(as === undefined ? {} : { authorization: basicAuthHeader({ user: as.username, password: as.password }) }),
    },
    body: new URLSearchParams({ q: statement }).toString(),
  });
  // With authentication on and no user yet, every statement but the first admin's is refused so.
  if (/create admin user first/.test(answer.message)) throw new InfluxQueryError(answer.message);
  if (answer.status === 401)
    throw new ConfigError(
      `InfluxDB at ${url} refused the admin's credentials (${answer.message}): check INFLUX_ADMIN_USERNAME and INFLUX_ADMIN_PASSWORD`,
    );
  if (answer.status !== 200)
    throw new InfluxUnavailableError(`InfluxDB answered ${answer.status} to ${statement}: ${answer.message}`);
  const body = parseUntrustedJson(answer.body) as { results?: Array<{ series?: Series[]; error?: string }> };
  const error = body.results?.[0]?.error;
  if (error !== undefined) throw new InfluxQueryError(`${statement}: ${error}`);
  return body.results?.[0]?.series ?? [];
}

async function waitForPing(url: string, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const answer = await request(`${url}/ping`, { method: "GET", headers: {} });
      if (answer.status === 204) return;
    } catch (error) {
      if (Date.now() >= deadline) throw error;
    }
    if (Date.now() >= deadline) throw new InfluxUnavailableError(`InfluxDB at ${url} did not answer /ping in time`);
    await sleep(1000);
  }
}

function q(name: string): string {
  return `"${name.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function literal(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}
