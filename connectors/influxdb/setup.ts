import { setTimeout as sleep } from "node:timers/promises";
import { ConfigError, InfluxQueryError, InfluxUnavailableError } from "../../lib/errors.js";
import { basicAuthHeader } from "../../lib/infra/http/basic-auth.js";
import { parseUntrustedJson } from "../../lib/infra/json.js";
import {
  createContinuousQuery,
  DOWNSAMPLED_POLICY,
  DOWNSAMPLES,
  downsampleSelect,
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
 * bounded raw policy, the downsampled policy and its continuous queries, a write user and a read
 * user with their passwords and grants. Returns what it changed, one line each.
 */
export async function setupInflux(plan: SetupPlan, options: { backfill?: string } = {}): Promise<string[]> {
  await waitForPing(plan.url, plan.waitMs);
  const changes: string[] = [];
  const run = (statement: string, as: Credentials | undefined = plan.admin) => query(plan.url, statement, as);
  const change = async (statement: string, what: string) => {
    await run(statement);
    changes.push(what);
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
  for (const [name, duration, isDefault] of [
    [RAW_POLICY, plan.rawRetention, true],
    [DOWNSAMPLED_POLICY, plan.downsampledRetention, false],
  ] as const) {
    const shown = policies.get(name);
    const shard = shardDuration(duration);
    const spec = `DURATION ${duration} REPLICATION 1 SHARD DURATION ${shard}${isDefault ? " DEFAULT" : ""}`;
    if (shown === undefined)
      await change(
        `CREATE RETENTION POLICY ${q(name)} ON ${q(plan.database)} ${spec}`,
        `created policy ${name} (${duration})`,
      );
    else if (
      shown[1] !== shownDuration(duration) ||
      shown[2] !== shownDuration(shard) ||
      (isDefault && shown[4] !== true)
    )
      await change(
        `ALTER RETENTION POLICY ${q(name)} ON ${q(plan.database)} ${spec}`,
        `set policy ${name} to ${duration}`,
      );
  }

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

  if (options.backfill !== undefined)
    for (const d of DOWNSAMPLES) {
      // Whole minutes only: a partial minute's aggregate would be overwritten by the next CQ run anyway.
      const where = `time >= now() - ${options.backfill} AND time < now()`;
      const written = Number(rows(await run(downsampleSelect(plan.database, d, where)))[0]?.[1] ?? 0);
      changes.push(`backfilled ${d.name}: ${written} aggregates`);
    }
  return changes;
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

async function query(url: string, statement: string, as: Credentials | undefined): Promise<Series[]> {
  const answer = await request(`${url}/query`, {
    method: "POST",
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

/** The rows of every series; InfluxDB leaves `values` out of an empty one (no continuous query yet). */
function rows(series: Series[]): unknown[][] {
  return series.flatMap((s) => (s.values as unknown[][] | undefined) ?? []);
}

function q(name: string): string {
  return `"${name.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function literal(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}
