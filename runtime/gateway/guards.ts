import { z } from "zod";
import { defineSettings, readSettings } from "../../lib/infra/settings.js";
import { durationSchema } from "../../lib/infra/duration.js";
import { hostListSchema } from "../../lib/infra/http/allowed-hosts.js";
import { DEFAULT_MAX_FAILURES } from "../../lib/infra/http/attempt-throttle.js";
import { isLoopback } from "../../lib/infra/net.js";

export interface GatewayLimits {
  /** Largest async body the gateway holds while the call waits to run. */
  maxAsyncBodyBytes: number;
  /** Async calls accepted and not yet answered to their callback; beyond it, 429. */
  maxPendingAsync: number;
  /** Hosts (name or name:port) an X-Callback-Url may name besides this machine's loopback. */
  callbackAllowedHosts: string[];
  /** Host names the gateway answers besides loopback, IP addresses and this machine's name (lib/infra/http/allowed-hosts.ts). */
  hosts: string[];
  /** How failed /system logins are throttled per client address (lib/infra/http/attempt-throttle.ts). */
  login: { maxFailures: number; firstWaitMs: number; maxWaitMs: number };
}

/** As the functions' own body limit (MAX_JSON_SIZE's default): a body they would refuse is refused here. */
export const DEFAULT_MAX_ASYNC_BODY = 1024 * 1024;

/** 64 × 1 MiB is the most the gateway holds in async bodies; fan readings are 200 bytes. */
export const DEFAULT_MAX_ASYNC_PENDING = 64;

/** A person who mistyped five times waits half a minute; a guesser soon waits a quarter of an hour per guess. */
export const DEFAULT_LOGIN_WAIT = "30s";
export const DEFAULT_LOGIN_MAX_WAIT = "15m";

/** What the local gateway accepts from its callers (docs/start.md). */
export const LIMIT_SETTINGS = defineSettings({
  GATEWAY_MAX_ASYNC_BODY: {
    env: ["GATEWAY_MAX_ASYNC_BODY"],
    help: "largest async body in bytes (413 above it)",
    default: DEFAULT_MAX_ASYNC_BODY,
    schema: z.coerce.number().int().min(1).default(DEFAULT_MAX_ASYNC_BODY),
  },
  GATEWAY_MAX_ASYNC_PENDING: {
    env: ["GATEWAY_MAX_ASYNC_PENDING"],
    help: "async calls accepted and not yet answered to their callback (429 beyond)",
    default: DEFAULT_MAX_ASYNC_PENDING,
    schema: z.coerce.number().int().min(1).default(DEFAULT_MAX_ASYNC_PENDING),
  },
  CALLBACK_ALLOWED_HOSTS: {
    env: ["CALLBACK_ALLOWED_HOSTS"],
    help: "hosts (name or name:port, comma-separated) an X-Callback-Url may name besides this machine's loopback (none by default)",
    schema: z
      .string()
      .transform((text) =>
        text
          .split(",")
          .map((h) => h.trim().toLowerCase())
          .filter((h) => h !== ""),
      )
      .default([]),
  },
  GATEWAY_HOSTS: {
    env: ["GATEWAY_HOSTS"],
    help: "host names (comma-separated) the gateway and its page answer for besides localhost, IP addresses and this machine's name; other Host headers get 421 (a DNS rebinding guard)",
    schema: hostListSchema(),
  },
  GATEWAY_LOGIN_FAILURES: {
    env: ["GATEWAY_LOGIN_FAILURES"],
    help: "failed /system logins from one address before it must wait (429 with Retry-After)",
    default: DEFAULT_MAX_FAILURES,
    schema: z.coerce.number().int().min(1).default(DEFAULT_MAX_FAILURES),
  },
  GATEWAY_LOGIN_WAIT: {
    env: ["GATEWAY_LOGIN_WAIT"],
    help: "the first wait after those failures, doubled for each further failure",
    default: DEFAULT_LOGIN_WAIT,
    schema: durationSchema(DEFAULT_LOGIN_WAIT),
  },
  GATEWAY_LOGIN_MAX_WAIT: {
    env: ["GATEWAY_LOGIN_MAX_WAIT"],
    help: "the longest wait; an address's failures are forgotten this long after its last failure or wait",
    default: DEFAULT_LOGIN_MAX_WAIT,
    schema: durationSchema(DEFAULT_LOGIN_MAX_WAIT),
  },
});

export function readGatewayLimits(env?: NodeJS.ProcessEnv): GatewayLimits {
  const e = readSettings(LIMIT_SETTINGS, env);
  return {
    maxAsyncBodyBytes: e.GATEWAY_MAX_ASYNC_BODY,
    maxPendingAsync: e.GATEWAY_MAX_ASYNC_PENDING,
    callbackAllowedHosts: e.CALLBACK_ALLOWED_HOSTS,
    hosts: e.GATEWAY_HOSTS,
    login: {
      maxFailures: e.GATEWAY_LOGIN_FAILURES,
      firstWaitMs: e.GATEWAY_LOGIN_WAIT,
      maxWaitMs: e.GATEWAY_LOGIN_MAX_WAIT,
    },
  };
}

/**
 * The callback address of an async call, if the gateway may post to it: http(s) on this machine's
 * loopback, or on a host listed in CALLBACK_ALLOWED_HOSTS. Anything else would let whoever can
 * reach the gateway make it send requests into the network it sits in.
 */
export function checkCallbackUrl(value: string, allowedHosts: readonly string[]): { url: URL } | { error: string } {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { error: `X-Callback-Url ${JSON.stringify(value.slice(0, 200))} is not a URL` };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return { error: `X-Callback-Url must be http or https, not ${url.protocol}` };
  // Credentials in the address would be posted to and written in logs; the receiver should take a
  // token in its path or be listed, not a password the gateway would have to hide.
  if (url.username !== "" || url.password !== "")
    return { error: "X-Callback-Url may not carry a user name or password" };
  if (allowedHosts.includes(url.hostname.toLowerCase()) || allowedHosts.includes(url.host.toLowerCase()))
    return { url };
  // A query string would let a caller drive a local service by URL alone (InfluxDB 1.x runs
  // `POST /query?q=DROP DATABASE …` without credentials by default).
  if (isLoopback(url.hostname))
    return url.search === ""
      ? { url }
      : {
          error:
            "X-Callback-Url on this machine's loopback may not carry a query string; list the host in CALLBACK_ALLOWED_HOSTS to allow it",
        };
  return {
    error: `X-Callback-Url host ${url.host} is not this machine's loopback; list it in CALLBACK_ALLOWED_HOSTS to allow it`,
  };
}
