import type { Logger } from "../../lib/infra/log.js";
import type { PageConfig } from "../config.js";
import type { Access } from "./access.js";
import { LocalAccess } from "./local.js";
import { OffAccess } from "./off.js";
import { TrustedProxies } from "./peers.js";
import { ProxyAccess } from "./proxy.js";
import { Sessions } from "./sessions.js";
import { UsersFile } from "./users.js";

/** The sign-in the configuration asks for (readPageConfig has refused what cannot be safe). */
export function createAccess(config: PageConfig, log: Logger): Access {
  const proxies = new TrustedProxies(config.trustedProxies);
  if (config.signIn === "off") return new OffAccess();
  if (config.signIn === "proxy") return new ProxyAccess({ ...config.proxy, proxies, log });
  return createLocalAccess({ ...config, usersFile: config.usersFile as string }, log);
}

export type LocalAccessConfig = Pick<
  PageConfig,
  "sessionIdleMs" | "sessionMaxMs" | "cookieSecure" | "trustedProxies"
> & {
  usersFile: string;
};

/**
 * Sign-in with the users of a file: `fanwatch page` and `fanwatch start` with PAGE_USERS_FILE.
 * `onInvalid` hears of a users file that turned bad (the last good users stay); by default, the log.
 */
export function createLocalAccess(
  config: LocalAccessConfig,
  log: Logger,
  onInvalid: (message: string) => void = (message) =>
    log.error({ event: "users_file_invalid", err: message }, "the users file is invalid; the last good users stay"),
): LocalAccess {
  const file = config.usersFile;
  const users = new UsersFile(file, onInvalid);
  if (users.size === 0) log.warn({ event: "no_users", file }, `${file} lists no users: nobody can sign in`);
  return new LocalAccess({
    users,
    sessions: new Sessions({ idleMs: config.sessionIdleMs, maxAgeMs: config.sessionMaxMs }),
    proxies: new TrustedProxies(config.trustedProxies),
    cookieSecure: config.cookieSecure,
    log,
  });
}
