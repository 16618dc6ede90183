import type { Command } from "commander";
import { HEALTH_SETTINGS } from "../functions/health/config.js";
import { NoRegistryError, RegistryUnavailableError } from "../lib/errors.js";
import { SITE_SETTINGS } from "../lib/infra/config.js";
import { readSettings, readSettingsFrom } from "../lib/infra/settings.js";
import { redactUrl } from "../lib/mqtt/settings.js";
import { GATE_SETTINGS, readGateSettings } from "../lib/models/gates.js";
import { siteGates } from "./model-gates.js";
import { NATS_URL_SETTINGS, withNats } from "./nats-connection.js";
import { addSettingFlags, addSettingsHelp, type Io } from "./parse.js";

/** Read, not flagged: the buckets' copies, should this command make them. */
const MORE = { NATS_KV_REPLICAS: HEALTH_SETTINGS.NATS_KV_REPLICAS };
const WHERE = {
  NATS_URL: { ...NATS_URL_SETTINGS.NATS_URL, help: "the NATS server (JetStream) holding the model registry" },
  SITE: { ...SITE_SETTINGS.SITE, flag: "--site <name>" },
};

/**
 * `fanwatch model auto-promote`: promotes the site's shadow once it has run MODEL_AUTO_PROMOTE_AFTER
 * and passes every gate (lib/models/auto-promote.ts); otherwise says why not. One check per run,
 * for a timer or a CronJob to repeat: no service to keep alive, and each run reads the gates'
 * settings afresh.
 */
export function addAutoPromoteCommand(model: Command, io: Io): Command {
  const command = model
    .command("auto-promote")
    .description("promote the site's shadow if it has shadowed long enough and passes every promotion gate")
    .option("--json", "the outcome as one JSON object");
  const given = addSettingFlags(command, WHERE);
  addSettingsHelp(
    command,
    [
      { title: "Where the registry is (a flag beats its variable)", settings: { ...WHERE, ...MORE } },
      { title: "The gates and auto-promotion", settings: GATE_SETTINGS },
    ],
    ["docs/models.md: promotion gates and auto-promotion."],
  );
  command.exitOverride();
  command.action(async (opts: Record<string, unknown>) => {
    const { values, from } = readSettingsFrom(WHERE, undefined, given(opts));
    if (values.NATS_URL === undefined || values.NATS_URL === "")
      throw new NoRegistryError("NATS_URL is not set (or --nats): the model registry lives in NATS JetStream");
    const settings = readGateSettings();
    const where = { url: values.NATS_URL, from: from.NATS_URL ?? "NATS_URL", shown: redactUrl(values.NATS_URL) };
    const connection = {
      name: "fanwatch-auto-promote",
      timeoutMs: 5_000,
      unavailable: (message: string, cause: unknown) => new RegistryUnavailableError(message, { cause }),
    };
    const [{ ModelRegistry }, { autoPromote }] = await Promise.all([
      import("../lib/models/registry.js"),
      import("../lib/models/auto-promote.js"),
    ]);
    await withNats(where, connection, async ({ js, jsm }) => {
      // As the other model commands: buckets made here get the cluster's copies.
      const registry = await ModelRegistry.open(js, { replicas: readSettings(MORE).NATS_KV_REPLICAS });
      const { gates, dispose } = siteGates({ js, jsm }, registry, settings);
      try {
        const result = await autoPromote(registry, gates, values.SITE, settings.autoPromoteAfterMs);
        if (opts["json"] === true) {
          io.out(JSON.stringify(result));
          return;
        }
        if ("results" in result)
          for (const r of result.results) io.out(`${r.passed ? "passed" : "FAILED"}  ${r.gate}: ${r.detail}`);
        io.out(result.detail);
      } finally {
        dispose();
      }
    });
  });
  return command;
}
