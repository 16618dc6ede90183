import type { Command } from "commander";
import { RETENTION_DURATION } from "../connectors/influxdb/downsampling.js";
import { readSetupPlan, SETUP_SETTINGS } from "../connectors/influxdb/setup-config.js";
import { addSettingFlags, addSettingsHelp, settingParser, type Io } from "./parse.js";
import { z } from "zod";

export function addInfluxSetupCommand(program: Command, io: Io): void {
  const command = program
    .command("influx-setup")
    .description(
      "bring InfluxDB 1.x to what fanwatch needs, changing only what differs: admin, database, the downsampled policy and its continuous queries, the bounded raw policy (raw points it would drop downsampled first), a write and a read user",
    )
    .option(
      "--backfill <duration>",
      "also downsample the raw points of this last stretch now (after an upgrade, or an outage longer than 10 minutes), e.g. 7d",
      settingParser(z.string().regex(RETENTION_DURATION, { error: "a whole number of hours, days or weeks, e.g. 7d" })),
    );
  const given = addSettingFlags(command, SETUP_SETTINGS);
  addSettingsHelp(command, [{ title: "Settings (a flag beats its variable)", settings: SETUP_SETTINGS }]);
  command.action(async (opts: { backfill?: string } & Record<string, unknown>) => {
    const { setupInflux } = await import("../connectors/influxdb/setup.js");
    const plan = readSetupPlan(undefined, given(opts));
    // Each change printed as it happens: an upgrade's backfill reports a line per day.
    const report = (line: string) => io.out(line);
    const changes = await setupInflux(
      plan,
      opts.backfill === undefined ? { report } : { report, backfill: opts.backfill },
    );
    if (changes.length === 0) io.out(`InfluxDB at ${plan.url} is set up already: nothing changed`);
  });
}
