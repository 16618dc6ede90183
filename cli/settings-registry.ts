import { readdirSync } from "node:fs";
import { WRITER_SETTINGS } from "../connectors/influxdb/config.js";
import { SETUP_SETTINGS } from "../connectors/influxdb/setup-config.js";
import { CONNECTOR_SETTINGS } from "../connectors/mqtt/config.js";
import { HEALTH_SETTINGS } from "../functions/health/config.js";
import { HEALTH_POLICY_SETTINGS } from "../functions/health/policy.js";
import { PREDICT_SETTINGS } from "../functions/predict/config.js";
import { SCORE_SETTINGS } from "../functions/score/config.js";
import { SITE_SETTINGS, TOPIC_SETTINGS } from "../lib/infra/config.js";
import { GATE_SETTINGS } from "../lib/models/gates.js";
import { NOTIFIER_SETTINGS } from "../notifier/config.js";
import { PAGE_SETTINGS } from "../page/config.js";
import { LOG_SETTINGS } from "../lib/infra/log-level.js";
import { flagName, SECRET_SETTINGS, type Setting, type Settings } from "../lib/infra/settings.js";
import { MQTT_SETTINGS } from "../lib/mqtt/settings.js";
import { SCALE_SETTINGS } from "../runtime/gateway/autoscaler.js";
import { LIMIT_SETTINGS } from "../runtime/gateway/guards.js";
import { GATEWAY_SETTINGS } from "../runtime/gateway/credentials.js";
import { NATS_SETTINGS } from "../runtime/system/nats.js";
import { ALERTING_SETTINGS } from "../runtime/system/alerting.js";
import { BROKER_USER_SETTINGS } from "../runtime/system/broker-users.js";

/**
 * Every module's settings, in one list: what `npm run docs:config` writes into the tables of docs/
 * (between `<!-- settings:<id> -->` and `<!-- /settings:<id> -->`, ids joined by commas for one
 * table of several groups, `index` for docs/architecture.md's table of them all), and what
 * test/unit/config.test.ts checks those tables and the commands' help against. Here in cli/
 * because only cli/ may import every module.
 */
export interface SettingGroup {
  id: string;
  /** The module that declares and reads them. */
  module: string;
  /** Who reads them, for the index. */
  readers: string;
  settings: Settings;
}

export const SETTING_GROUPS: readonly SettingGroup[] = [
  { id: "topics", module: "lib/infra/config.ts", readers: "topics, every MQTT client", settings: TOPIC_SETTINGS },
  { id: "site", module: "lib/infra/config.ts", readers: "health, the notifier", settings: SITE_SETTINGS },
  { id: "mqtt", module: "lib/mqtt/settings.ts", readers: "every MQTT client", settings: MQTT_SETTINGS },
  { id: "secrets", module: "lib/infra/settings.ts", readers: "every secret", settings: SECRET_SETTINGS },
  { id: "log", module: "lib/infra/log-level.ts", readers: "every service", settings: LOG_SETTINGS },
  {
    id: "score",
    module: "functions/score/config.ts",
    readers: "score; TFJS_BACKEND also train, evaluate",
    settings: SCORE_SETTINGS,
  },
  { id: "predict", module: "functions/predict/config.ts", readers: "predict", settings: PREDICT_SETTINGS },
  { id: "health", module: "functions/health/config.ts", readers: "health", settings: HEALTH_SETTINGS },
  {
    id: "health-policy",
    module: "functions/health/policy.ts",
    readers: "health's rules, docs/health.md",
    settings: HEALTH_POLICY_SETTINGS,
  },
  {
    id: "connector",
    module: "connectors/mqtt/config.ts",
    readers: "the connector; each name in lower or upper case, or a flag",
    settings: CONNECTOR_SETTINGS,
  },
  { id: "writer", module: "connectors/influxdb/config.ts", readers: "the InfluxDB writer", settings: WRITER_SETTINGS },
  {
    id: "influx-setup",
    module: "connectors/influxdb/setup-config.ts",
    readers: "fanwatch influx-setup",
    settings: SETUP_SETTINGS,
  },
  { id: "gateway", module: "runtime/gateway/credentials.ts", readers: "the local gateway", settings: GATEWAY_SETTINGS },
  {
    id: "gateway-limits",
    module: "runtime/gateway/guards.ts",
    readers: "the local gateway",
    settings: LIMIT_SETTINGS,
  },
  {
    id: "gateway-scaling",
    module: "runtime/gateway/autoscaler.ts",
    readers: "the local gateway",
    settings: SCALE_SETTINGS,
  },
  { id: "notifier", module: "notifier/config.ts", readers: "the notifier", settings: NOTIFIER_SETTINGS },
  { id: "page", module: "page/config.ts", readers: "fanwatch page", settings: PAGE_SETTINGS },
  { id: "nats", module: "runtime/system/nats.ts", readers: "fanwatch start's health state", settings: NATS_SETTINGS },
  {
    id: "broker-users",
    module: "runtime/system/broker-users.ts",
    readers: "fanwatch start's embedded broker",
    settings: BROKER_USER_SETTINGS,
  },
  {
    id: "alerting",
    module: "runtime/system/alerting.ts",
    readers: "fanwatch start's Alertmanager",
    settings: ALERTING_SETTINGS,
  },
  {
    id: "model-gates",
    module: "lib/models/gates.ts",
    readers: "fanwatch model promote (the promotion gates)",
    settings: GATE_SETTINGS,
  },
];

export function settingGroup(id: string): SettingGroup {
  const group = SETTING_GROUPS.find((g) => g.id === id);
  if (group === undefined) throw new Error(`no settings group "${id}"; the groups are ${groupIds().join(", ")}`);
  return group;
}

export function groupIds(): string[] {
  return SETTING_GROUPS.map((g) => g.id);
}

/** A default as the docs show it: numbers and booleans as they are, a value in code type, words ("best available") as words. */
function docDefault(setting: Setting): string {
  const value = setting.default;
  if (value === undefined) return "–";
  if (typeof value !== "string") return String(value);
  return /\s/.test(value) ? value : `\`${value}\``;
}

/** "`MQTT_PASSWORD` (or the file in `MQTT_PASSWORD_FILE`, or the secret `mqtt-password`)", aliases in parentheses. */
function docNames(setting: Setting): string {
  const [name, ...aliases] = setting.env;
  if (name === undefined) return "–";
  const notes = aliases.length === 0 ? [] : [aliases.map((a) => `\`${a}\``).join(", ")];
  if (setting.secret !== undefined) notes.push(`or the file in \`${name}_FILE\`, or the secret \`${setting.secret}\``);
  return `\`${name}\`${notes.length === 0 ? "" : ` (${notes.join("; ")})`}`;
}

/** One table of the settings of the groups `ids` (comma-separated): variable (and flag when one has one), default, what it does. */
export function settingsTable(ids: string): string {
  const settings = ids.split(",").flatMap((id) => Object.values<Setting>(settingGroup(id).settings));
  const flags = settings.some((s) => s.flag !== undefined);
  const rows = settings.map((s) => {
    const cells = [docNames(s), ...(flags ? [s.flag === undefined ? "" : `\`${flagName(s)}\``] : []), docDefault(s)];
    return `| ${[...cells, (s.doc ?? s.help).replace(/\|/g, "\\|")].join(" | ")} |`;
  });
  const header = flags
    ? "| variable | flag | default | |\n|---|---|---|---|"
    : "| variable | default | |\n|---|---|---|";
  return [header, ...rows].join("\n");
}

/** docs/architecture.md's table: every group, its module and its variables with their defaults. */
export function settingsIndex(): string {
  const rows = SETTING_GROUPS.map((group) => {
    const cells = Object.values<Setting>(group.settings)
      .filter((s) => s.env.length > 0)
      .map((s) => (s.default === undefined ? docNames(s) : `${docNames(s)} = ${docDefault(s)}`));
    return `| \`${group.module}\` (${group.readers}) | ${cells.join("; ")} |`;
  });
  return ["| module | variable (alias) = default |", "|---|---|", ...rows].join("\n");
}

const REGION = /(<!-- settings:([\w,-]+) -->)[\s\S]*?(<!-- \/settings:\2 -->)/g;

/** `text` with every settings region rewritten from the registry. */
export function renderSettingsRegions(text: string): string {
  return text.replace(
    REGION,
    (_, open: string, ids: string, close: string) =>
      `${open}\n${ids === "index" ? settingsIndex() : settingsTable(ids)}\n${close}`,
  );
}

/** The ids of the regions in `text`. */
export function settingsRegions(text: string): string[] {
  return [...text.matchAll(REGION)].map((m) => m[2] ?? "");
}

/** The documents that may hold settings tables, relative to the repository: README.md and docs/*.md. */
export function settingsDocuments(repoRoot: string): string[] {
  return [
    "README.md",
    ...readdirSync(`${repoRoot}/docs`)
      .filter((f) => f.endsWith(".md"))
      .sort()
      .map((f) => `docs/${f}`),
  ];
}
