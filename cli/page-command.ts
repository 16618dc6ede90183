import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { UsageError } from "../lib/errors.js";
import { TOPIC_SETTINGS } from "../lib/infra/config.js";
import { LOG_SETTINGS } from "../lib/infra/log-level.js";
import { ROLES } from "../lib/infra/signed-user.js";
import { MQTT_SETTINGS } from "../lib/mqtt/settings.js";
import { PAGE_SETTINGS } from "../page/config.js";
import { addSettingFlags, addSettingsHelp, type Io } from "./parse.js";
import { readPassword } from "./password-input.js";
import { runUntilSignalled } from "./service.js";

/** `fanwatch page`: the fleet page as a service with sign-in, and its users file (docs/page.md). */
export function addPageCommand(program: Command, io: Io): void {
  const command = program
    .command("page")
    .description(
      "serve the fleet page with sign-in: the live fleet from MQTT and health, actions passed on to health in the signed-in user's name (docs/page.md)",
    );
  const given = addSettingFlags(command, PAGE_SETTINGS);
  addSettingsHelp(
    command,
    [
      { title: "The page's variables (a flag beats its variable)", settings: PAGE_SETTINGS },
      { title: "The broker the fleet is read from", settings: MQTT_SETTINGS },
      { title: "The topics it reads", settings: TOPIC_SETTINGS },
      { title: "Logs", settings: LOG_SETTINGS },
    ],
    [
      "Sign-in local: users in PAGE_USERS_FILE (`fanwatch page add-user NAME --role engineer --file FILE`),",
      "roles viewer (sees), engineer and admin (act); sessions in memory, HttpOnly SameSite=Strict cookies,",
      "a CSRF token on every action, sign-ins throttled per user and per address. Sign-in proxy: an OpenID",
      "Connect proxy (oauth2-proxy) names the user in PAGE_PROXY_USER_HEADER, believed only from",
      "PAGE_TRUSTED_PROXIES. Sign-in off: loopback only. Every action reaches health with the user signed",
      "with PAGE_USER_SECRET, which health must hold too. With NATS_URL the page counts fans from the registry",
      "(KV bucket fan_registry, opened in the background: while NATS is away it counts fans as seen) and its",
      "admins approve, add and retire fans (the Fans panel); the Models panel shows SITE's models from the",
      "model registry on the same NATS (read only; while NATS is away it says so).",
    ],
  );
  command.action(async (opts: Record<string, unknown>) => {
    const [{ PageService }, { readPageConfig }, { createLogger }, { readTopics }, { mqttSettingsFromEnv }, nats] =
      await Promise.all([
        import("../page/page-service.js"),
        import("../page/config.js"),
        import("../lib/infra/log.js"),
        import("../lib/infra/config.js"),
        import("../lib/mqtt/settings.js"),
        import("../lib/registry/nats-registry.js"),
      ]);
    const config = readPageConfig(undefined, given(opts));
    const log = createLogger("page");
    // The registry (NATS_URL) opened in the background, retried while NATS is away: the page serves
    // without it (fans counted as seen, "no registry yet") rather than exit and crash-loop in K3s.
    const natsUrl = config.natsUrl;
    const openRegistry =
      natsUrl === undefined
        ? undefined
        : () =>
            nats.openFanRegistry({
              url: natsUrl,
              replicas: config.kvReplicas,
              name: `fanwatch-page-${process.pid}`,
              log,
            });
    // The model registry on the same NATS, read for the Models panel, likewise in the background.
    const openModels =
      natsUrl === undefined
        ? undefined
        : async () => {
            const { openModelRegistry } = await import("../page/models-link.js");
            return openModelRegistry({
              url: natsUrl,
              replicas: config.kvReplicas,
              name: `fanwatch-page-models-${process.pid}`,
            });
          };
    const page = new PageService({
      config,
      topics: readTopics(),
      mqtt: mqttSettingsFromEnv(),
      log,
      openRegistry,
      openModels,
    });
    if (config.signIn === "off")
      io.err("sign-in is off: anyone who can reach this machine's loopback address acts in any name");
    if (natsUrl === undefined)
      io.err(
        "no fan registry (NATS_URL unset): fans are counted as the page sees them, and nobody manages fans here; no model registry: score serves MODEL_DIR",
      );
    await runUntilSignalled(io, page, log);
  });

  command
    .command("hash-password")
    .description(
      "print the scrypt hash of a password for the users file (read from the terminal or stdin, never from the command line)",
    )
    .action(async () => {
      const { hashPassword } = await import("../page/access/password.js");
      io.out(await hashPassword(await readPassword()));
    });

  command
    .command("add-user")
    .description(
      "add a user to the users file, or change their role and password (the password from the terminal or stdin)",
    )
    .argument("<name>", "the user's name, as the timeline shows who acted")
    .requiredOption("--role <role>", `${ROLES.join(", ")}`)
    .requiredOption("--file <file>", "the users file (created if missing, mode 600)")
    .action(async (name: string, opts: { role: string; file: string }) => {
      const [{ hashPassword }, { parseUsers, userLine, UserNameSchema, RoleSchema }] = await Promise.all([
        import("../page/access/password.js"),
        import("../page/access/users.js"),
      ]);
      const parsedName = UserNameSchema.safeParse(name);
      if (!parsedName.success) throw new UsageError(parsedName.error.issues[0]?.message ?? "bad name");
      const role = RoleSchema.safeParse(opts.role);
      if (!role.success) throw new UsageError(`--role must be one of ${ROLES.join(", ")}`);
      const text = existsSync(opts.file) ? readFileSync(opts.file, "utf8") : "";
      const known = parseUsers(text, opts.file).has(name); // refuses a file that is bad already
      const line = userLine(name, role.data, await hashPassword(await readPassword()));
      const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "" && l.split(":")[0] !== name);
      const temporary = `${opts.file}.${process.pid}.tmp`;
      writeFileSync(temporary, [...lines, line].join("\n") + "\n", { mode: 0o600 });
      renameSync(temporary, opts.file);
      io.err(`${known ? "changed" : "added"} ${name} (${role.data}) in ${opts.file}`);
      io.err(
        `in K3s: kubectl -n fanwatch create secret generic fanwatch-page-users --from-file=users=${opts.file} --dry-run=client -o yaml | kubectl apply -f -`,
      );
    });
}
