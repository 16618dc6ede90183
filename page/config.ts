import { z } from "zod";
import { ConfigError } from "../lib/errors.js";
import { durationSchema } from "../lib/infra/duration.js";
import { hostListSchema } from "../lib/infra/http/allowed-hosts.js";
import { isLoopback } from "../lib/infra/net.js";
import { SITE_SETTINGS } from "../lib/infra/config.js";
import { defineSettings, readSettingsFrom, SECRET_SETTINGS, type SettingValues } from "../lib/infra/settings.js";
import { ROLES, USER_SIGNING_SETTINGS, type Role } from "../lib/infra/signed-user.js";
import { SIGN_IN_MODES, type SignInMode } from "./access/access.js";
import { proxyListSchema } from "./access/peers.js";

/** The page service's defaults, by variable (docs/page.md). */
export const PAGE_DEFAULTS = Object.freeze({
  PAGE_SIGN_IN: "local",
  PAGE_PORT: 8080,
  PAGE_HOST: "0.0.0.0",
  HEALTH_URL: "http://gateway.openfaas:8080/function/health",
  PAGE_SESSION_IDLE: "2h",
  PAGE_SESSION_MAX: "12h",
  PAGE_COOKIE_SECURE: false,
  PAGE_ALLOW_PLAIN_HTTP: false,
  PAGE_PROXY_USER_HEADER: "x-forwarded-user",
  PAGE_PROXY_GROUPS_HEADER: "x-forwarded-groups",
  PAGE_PROXY_DEFAULT_ROLE: "viewer",
  PAGE_PROXY_SIGNOUT_URL: "/oauth2/sign_out",
  PAGE_MAX_STREAMS: 64,
  PAGE_MAX_STREAMS_PER_USER: 4,
});

const d = PAGE_DEFAULTS;

const trueOrFalse = z
  .enum(["true", "false"], { error: (issue) => `"${String(issue.input)}" is not true or false` })
  .transform((v) => v === "true");

/** `group=role,group=role`: the proxy's groups and the page's roles they give. */
const roleMapSchema = z
  .string()
  .default("")
  .transform((text, ctx) => {
    const map = new Map<string, Role>();
    for (const item of text.split(",").map((i) => i.trim())) {
      if (item === "") continue;
      const eq = item.lastIndexOf("=");
      const group = item.slice(0, eq).trim();
      const role = item.slice(eq + 1).trim();
      if (eq <= 0 || !(ROLES as readonly string[]).includes(role)) {
        ctx.addIssue({ code: "custom", message: `${JSON.stringify(item)} is not group=${ROLES.join("|")}` });
        return z.NEVER;
      }
      map.set(group, role as Role);
    }
    return map;
  });

const headerName = (fallback: string) =>
  z
    .string()
    .regex(/^[A-Za-z0-9-]+$/, "a header name is letters, digits and '-'")
    .default(fallback)
    .transform((h) => h.toLowerCase());

const port = (fallback: number) => z.coerce.number().int().min(0).max(65_535).default(fallback);

export const PAGE_SETTINGS = defineSettings({
  PAGE_SIGN_IN: {
    env: ["PAGE_SIGN_IN"],
    flag: "--sign-in <mode>",
    help: "how people sign in: local (the users file), proxy (an OpenID Connect proxy's header), off (loopback only)",
    default: d.PAGE_SIGN_IN,
    schema: z.enum(SIGN_IN_MODES).default(d.PAGE_SIGN_IN),
  },
  PAGE_USERS_FILE: {
    env: ["PAGE_USERS_FILE"],
    flag: "--users <file>",
    help: "the users file of sign-in local: name:role:hash a line (fanwatch page add-user)",
    doc: "the users file of sign-in `local`: `name:role:scrypt-hash` a line (`fanwatch page add-user`); read again when it changes",
    schema: z.string().optional(),
  },
  PAGE_SESSION_IDLE: {
    env: ["PAGE_SESSION_IDLE"],
    help: "a session without a request for this long ends",
    default: d.PAGE_SESSION_IDLE,
    schema: durationSchema(d.PAGE_SESSION_IDLE, 60_000),
  },
  PAGE_SESSION_MAX: {
    env: ["PAGE_SESSION_MAX"],
    help: "a session ends this long after sign-in, however active (a shift)",
    default: d.PAGE_SESSION_MAX,
    schema: durationSchema(d.PAGE_SESSION_MAX, 60_000),
  },
  PAGE_COOKIE_SECURE: {
    env: ["PAGE_COOKIE_SECURE"],
    help: "mark the session cookie Secure even when the page does not see https (true when a TLS proxy does not say X-Forwarded-Proto)",
    default: d.PAGE_COOKIE_SECURE,
    schema: trueOrFalse.default(false),
  },
  PAGE_ALLOW_PLAIN_HTTP: {
    env: ["PAGE_ALLOW_PLAIN_HTTP"],
    help: "allow sign-in local on a non-loopback address over plain http (passwords and cookies in clear): only for a trial on a network you trust",
    default: d.PAGE_ALLOW_PLAIN_HTTP,
    schema: trueOrFalse.default(false),
  },
  PAGE_TRUSTED_PROXIES: {
    env: ["PAGE_TRUSTED_PROXIES"],
    help: "addresses or CIDR ranges of the proxies in front of the page, comma-separated: only they may name the user, the client or https",
    doc: "addresses or CIDR ranges of the proxies in front of the page, comma-separated: only a request from one of them may name the user (sign-in `proxy`), the client (`X-Forwarded-For`, for the throttle) or https (`X-Forwarded-Proto`)",
    schema: proxyListSchema,
  },
  PAGE_ALERTMANAGER_FROM: {
    env: ["PAGE_ALERTMANAGER_FROM"],
    help: "addresses or CIDR ranges that may post Alertmanager's notifications to /ui/alertmanager, comma-separated; unset: nobody",
    schema: proxyListSchema,
  },
  PAGE_PROXY_USER_HEADER: {
    env: ["PAGE_PROXY_USER_HEADER"],
    help: "sign-in proxy: the header naming the user",
    default: d.PAGE_PROXY_USER_HEADER,
    schema: headerName(d.PAGE_PROXY_USER_HEADER),
  },
  PAGE_PROXY_GROUPS_HEADER: {
    env: ["PAGE_PROXY_GROUPS_HEADER"],
    help: "sign-in proxy: the header listing the user's groups, comma-separated",
    default: d.PAGE_PROXY_GROUPS_HEADER,
    schema: headerName(d.PAGE_PROXY_GROUPS_HEADER),
  },
  PAGE_PROXY_ROLES: {
    env: ["PAGE_PROXY_ROLES"],
    help: "sign-in proxy: group=role pairs, comma-separated (maintenance=engineer,it-ops=admin); the highest applies",
    schema: roleMapSchema,
  },
  PAGE_PROXY_DEFAULT_ROLE: {
    env: ["PAGE_PROXY_DEFAULT_ROLE"],
    help: "sign-in proxy: the role of a user in no mapped group (none: not let in)",
    default: d.PAGE_PROXY_DEFAULT_ROLE,
    schema: z
      .enum([...ROLES, "none"])
      .default(d.PAGE_PROXY_DEFAULT_ROLE)
      .transform((r) => (r === "none" ? undefined : r)),
  },
  PAGE_PROXY_SIGNOUT_URL: {
    env: ["PAGE_PROXY_SIGNOUT_URL"],
    help: "sign-in proxy: where Sign out sends the browser (the proxy's sign-out)",
    default: d.PAGE_PROXY_SIGNOUT_URL,
    schema: z.string().default(d.PAGE_PROXY_SIGNOUT_URL),
  },
  PAGE_PORT: {
    env: ["PAGE_PORT"],
    flag: "--port <port>",
    help: "port of the page and /healthz, and of /metrics unless PAGE_METRICS_PORT is set",
    default: d.PAGE_PORT,
    schema: port(d.PAGE_PORT),
  },
  PAGE_METRICS_PORT: {
    env: ["PAGE_METRICS_PORT"],
    help: "a port of its own for /metrics (plain http, where the page listens), so that a NetworkPolicy can admit only the monitoring to it; unset: /metrics on PAGE_PORT",
    schema: z.coerce.number().int().min(0).max(65_535).optional(),
  },
  PAGE_HOST: {
    env: ["PAGE_HOST"],
    flag: "--host <address>",
    help: "address the page listens on (sign-in off needs a loopback address)",
    default: d.PAGE_HOST,
    schema: z.string().default(d.PAGE_HOST),
  },
  PAGE_HOSTS: {
    env: ["PAGE_HOSTS"],
    help: "host names the page answers for besides loopback, IP addresses and its own host name, comma-separated (its DNS name)",
    doc: "host names the page answers for besides loopback, IP addresses and the machine's own name, comma-separated: the name people type (a DNS rebinding guard; others get 421)",
    schema: hostListSchema(),
  },
  PAGE_TLS_CERT_FILE: {
    env: ["PAGE_TLS_CERT_FILE"],
    help: "PEM certificate (chain) to serve the page over https itself, with PAGE_TLS_KEY_FILE; unset: http (put a TLS proxy in front)",
    schema: z.string().optional(),
  },
  PAGE_TLS_KEY_FILE: {
    env: ["PAGE_TLS_KEY_FILE"],
    help: "the PEM private key of PAGE_TLS_CERT_FILE",
    schema: z.string().optional(),
  },
  HEALTH_URL: {
    env: ["HEALTH_URL"],
    flag: "--health-url <url>",
    help: "the health function: records to show, actions to pass on",
    default: d.HEALTH_URL,
    schema: z.url().default(d.HEALTH_URL),
  },
  NATS_URL: {
    env: ["NATS_URL"],
    help: "the NATS server holding the fan registry (KV bucket fan_registry) and the model registry: the page counts fans from it, its admins manage fans, and the Models panel shows the site's models; unset: fans counted as seen, no Fans panel, no model registry",
    doc: "the NATS server holding the fan registry (KV bucket `fan_registry`) and the model registry (`fan_models`, `fan_models_active`), e.g. `nats://nats.fanwatch:4222`: the page counts fans from it, its admins approve, add and retire fans, and the Models panel shows the site's models; unset: fans counted as the page sees them, no Fans panel, and the Models panel says score serves `MODEL_DIR`",
    schema: z.string().optional(),
  },
  // The site whose models the Models panel shows (its pointer, replicas and comparisons).
  SITE: {
    ...SITE_SETTINGS.SITE,
    help: "the site whose models the Models panel shows (score's and predict's SITE)",
    doc: "the site whose models the Models panel shows: its pointer, score replicas and shadow comparisons (score's and predict's `SITE`)",
  },
  // Health's setting: whichever opens `fan_registry` first creates it, with this many copies.
  NATS_KV_REPLICAS: {
    env: ["NATS_KV_REPLICAS"],
    help: "copies of the device registry's and the model registry's buckets in a NATS cluster, should the page be the first to make them (as health's and score's)",
    default: 1,
    schema: z.coerce.number().int().min(1).max(5).default(1),
  },
  PAGE_FUNCTIONS_URL: {
    env: ["PAGE_FUNCTIONS_URL"],
    help: "the gateway's /system/functions, to show replicas (with the basic-auth-user/-password secrets when present); unset: not shown",
    schema: z.url().optional(),
  },
  PAGE_MAX_STREAMS: {
    env: ["PAGE_MAX_STREAMS"],
    help: "open event streams at most, all users together",
    default: d.PAGE_MAX_STREAMS,
    schema: z.coerce.number().int().min(1).max(10_000).default(d.PAGE_MAX_STREAMS),
  },
  PAGE_MAX_STREAMS_PER_USER: {
    env: ["PAGE_MAX_STREAMS_PER_USER"],
    help: "open event streams of one signed-in user at most",
    default: d.PAGE_MAX_STREAMS_PER_USER,
    schema: z.coerce.number().int().min(1).max(100).default(d.PAGE_MAX_STREAMS_PER_USER),
  },
  PAGE_USER_SECRET: USER_SIGNING_SETTINGS.PAGE_USER_SECRET,
  SECRET_MOUNT_PATH: SECRET_SETTINGS.SECRET_MOUNT_PATH,
});

export type PageSettings = SettingValues<typeof PAGE_SETTINGS>;

export interface PageConfig {
  signIn: SignInMode;
  usersFile: string | undefined;
  sessionIdleMs: number;
  sessionMaxMs: number;
  cookieSecure: boolean;
  trustedProxies: string[];
  /** Who may post to /ui/alertmanager. */
  alertmanagerFrom: string[];
  proxy: {
    userHeader: string;
    groupsHeader: string;
    roles: Map<string, Role>;
    defaultRole: Role | undefined;
    signOutUrl: string;
  };
  port: number;
  /** /metrics on a port of its own (0: any free one); undefined: on `port`. */
  metricsPort: number | undefined;
  host: string;
  hosts: string[];
  /** Certificate and key files: the page serves https itself. */
  tls: { certFile: string; keyFile: string } | undefined;
  healthUrl: string;
  /** NATS_URL: the fan registry's server; undefined: no registry. */
  natsUrl: string | undefined;
  /** SITE: whose models the Models panel shows. */
  site: string;
  /** NATS_KV_REPLICAS: copies of `fan_registry` (and the model buckets) when the page is the one to create them. */
  kvReplicas: number;
  functionsUrl: string | undefined;
  maxStreams: number;
  maxStreamsPerUser: number;
  userSecret: string | undefined;
  secretPath: string;
}

/** From the environment unless `env` is given; `given` (flags) beats it. Refuses what cannot be safe. */
export function readPageConfig(env?: NodeJS.ProcessEnv, given: Partial<PageSettings> = {}): PageConfig {
  const { values: s } = readSettingsFrom(PAGE_SETTINGS, env, given);
  if (s.PAGE_SIGN_IN === "off" && !isLoopback(s.PAGE_HOST))
    throw new ConfigError(
      `PAGE_SIGN_IN is off but PAGE_HOST is ${s.PAGE_HOST}: without sign-in anyone who reaches the page acts in any name, so it listens only on loopback (127.0.0.1); set PAGE_SIGN_IN=local with PAGE_USERS_FILE, or proxy`,
    );
  if (s.PAGE_SIGN_IN === "local" && s.PAGE_USERS_FILE === undefined)
    throw new ConfigError(
      "PAGE_SIGN_IN is local but PAGE_USERS_FILE is not set: make one with `fanwatch page add-user NAME --role engineer --file FILE`",
    );
  if (s.PAGE_SIGN_IN === "proxy" && s.PAGE_TRUSTED_PROXIES.length === 0)
    throw new ConfigError(
      "PAGE_SIGN_IN is proxy but PAGE_TRUSTED_PROXIES is empty: the user header is believed only from the proxy's address",
    );
  if (s.PAGE_SIGN_IN !== "off" && s.PAGE_USER_SECRET === undefined)
    throw new ConfigError(
      "sign-in is on but PAGE_USER_SECRET is not set: health could not tell the page's users from any other caller; set the secret fanwatch-page-user-secret (the same in health)",
    );
  if ((s.PAGE_TLS_CERT_FILE === undefined) !== (s.PAGE_TLS_KEY_FILE === undefined))
    throw new ConfigError("https needs both PAGE_TLS_CERT_FILE and PAGE_TLS_KEY_FILE");
  // Passwords and session cookies would cross the network in clear: https here or at a proxy in front.
  const https = s.PAGE_TLS_CERT_FILE !== undefined || s.PAGE_COOKIE_SECURE;
  if (s.PAGE_SIGN_IN === "local" && !isLoopback(s.PAGE_HOST) && !https && !s.PAGE_ALLOW_PLAIN_HTTP)
    throw new ConfigError(
      `sign-in local on ${s.PAGE_HOST} over plain http would send passwords and session cookies in clear: give the page a certificate (PAGE_TLS_CERT_FILE and PAGE_TLS_KEY_FILE), or put a TLS proxy in front and set PAGE_COOKIE_SECURE=true; PAGE_ALLOW_PLAIN_HTTP=true allows it for a trial`,
    );
  return {
    signIn: s.PAGE_SIGN_IN,
    usersFile: s.PAGE_USERS_FILE,
    sessionIdleMs: s.PAGE_SESSION_IDLE,
    sessionMaxMs: s.PAGE_SESSION_MAX,
    cookieSecure: s.PAGE_COOKIE_SECURE,
    trustedProxies: s.PAGE_TRUSTED_PROXIES,
    alertmanagerFrom: s.PAGE_ALERTMANAGER_FROM,
    proxy: {
      userHeader: s.PAGE_PROXY_USER_HEADER,
      groupsHeader: s.PAGE_PROXY_GROUPS_HEADER,
      roles: s.PAGE_PROXY_ROLES,
      defaultRole: s.PAGE_PROXY_DEFAULT_ROLE,
      signOutUrl: s.PAGE_PROXY_SIGNOUT_URL,
    },
    port: s.PAGE_PORT,
    metricsPort: s.PAGE_METRICS_PORT,
    host: s.PAGE_HOST,
    hosts: s.PAGE_HOSTS,
    tls:
      s.PAGE_TLS_CERT_FILE === undefined || s.PAGE_TLS_KEY_FILE === undefined
        ? undefined
        : { certFile: s.PAGE_TLS_CERT_FILE, keyFile: s.PAGE_TLS_KEY_FILE },
    healthUrl: s.HEALTH_URL,
    natsUrl: s.NATS_URL,
    site: s.SITE,
    kvReplicas: s.NATS_KV_REPLICAS,
    functionsUrl: s.PAGE_FUNCTIONS_URL,
    maxStreams: s.PAGE_MAX_STREAMS,
    maxStreamsPerUser: s.PAGE_MAX_STREAMS_PER_USER,
    userSecret: s.PAGE_USER_SECRET,
    secretPath: s.SECRET_MOUNT_PATH,
  };
}
