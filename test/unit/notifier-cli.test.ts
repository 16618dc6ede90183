import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildProgram } from "../../cli/main.js";
import type { Io } from "../../cli/parse.js";
import { SITE_SETTINGS } from "../../lib/infra/config.js";
import { helpLine, type Setting } from "../../lib/infra/settings.js";
import { NOTIFIER_SETTINGS } from "../../notifier/config.js";

const quiet: Io = { out: () => {}, err: () => {}, progress: () => {}, progressDone: () => {}, interactive: false };

/** `fanwatch <path…> --help` as one line (commander wraps it to the terminal's width). */
function help(...path: string[]): string {
  let command = buildProgram(quiet);
  for (const name of path) {
    const sub = command.commands.find((c) => c.name() === name);
    assert.ok(sub, `no command ${path.join(" ")}`);
    command = sub;
  }
  let text = "";
  command.configureOutput({ writeOut: (s) => (text += s) }).outputHelp();
  return text.replace(/\s+/g, " ");
}

describe("fanwatch notifier and notifications: their help", () => {
  it("fanwatch notifier --help lists every setting it reads, with its default", () => {
    const text = help("notifier");
    for (const setting of [...Object.values<Setting>(NOTIFIER_SETTINGS), ...Object.values<Setting>(SITE_SETTINGS)]) {
      const [variable] = setting.env;
      assert.ok(variable !== undefined && text.includes(variable), `${variable}`);
      if (setting.default !== undefined)
        assert.ok(text.includes(helpLine(setting).replace(/\s+/g, " ")), `${variable}: ${helpLine(setting)}`);
    }
    for (const flag of ["--nats", "--webhook", "--alertmanager", "--port", "--health-host"])
      assert.ok(text.includes(flag), flag);
    assert.ok(text.includes("X-Fanwatch-Delivery") && text.includes("dead letter"));
  });

  it("fanwatch notifications list and redrive say what they read and take", () => {
    for (const sub of ["list", "redrive"]) {
      const text = help("notifications", sub);
      for (const name of ["NATS_URL", "--nats", "SITE", "--json", "--target"])
        assert.ok(text.includes(name), `${sub}: ${name}`);
    }
    assert.ok(help("notifications", "redrive").includes("--id <transition id>"));
    assert.ok(help("notifications", "redrive").includes("--all"));
  });
});
