import { existsSync } from "node:fs";
import { z } from "zod";
import { defineSettings, readSettingsFrom } from "../infra/settings.js";

// Apart from lib/mqtt/client.ts so that reading settings (every CLI command's help does) does not load MQTT.js.

export interface MqttSettings {
  url: string;
  username?: string;
  password?: string;
  /** PEM file of the CA that signed the broker's certificate (mqtts://). */
  caFile?: string;
  /** The variable or flag that named the broker (MQTT_URL, --broker…), for messages; absent: the default broker. */
  from?: string;
}

/** The broker's usual port, and the broker used when neither MQTT_URL nor MQTT_HOST names one. */
export const DEFAULT_MQTT_PORT = 1883;
export const DEFAULT_MQTT_URL = `mqtt://127.0.0.1:${DEFAULT_MQTT_PORT}`;

/**
 * The schemes MQTT.js connects with under Node. It takes any other without a word and falls back
 * to plain MQTT (`htp://host:1883` "works"), so a typo would go unnoticed: refused here instead.
 */
export const MQTT_SCHEMES = ["mqtt", "mqtts", "tcp", "ssl", "tls", "ws", "wss"] as const;

/** Why MQTT.js cannot connect to `url`, or undefined when it can. */
function brokerUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `${JSON.stringify(url)} is not a URL such as ${DEFAULT_MQTT_URL}`;
  }
  const scheme = parsed.protocol.replace(/:$/, "");
  if (!(MQTT_SCHEMES as readonly string[]).includes(scheme))
    return `unsupported scheme "${scheme}" in ${JSON.stringify(url)}: use ${MQTT_SCHEMES.join(", ")}`;
  if (parsed.hostname === "") return `${JSON.stringify(url)} names no host`;
  return undefined;
}

/** A broker URL with a scheme MQTT.js connects with; a ConfigError naming the variable or flag otherwise. */
export const brokerUrl = z.string().transform((text, ctx) => {
  const problem = brokerUrlProblem(text);
  if (problem === undefined) return text;
  ctx.issues.push({ code: "custom", message: problem, input: text });
  return z.NEVER;
});

/**
 * A broker URL, or a host name (the reference system's MQTT_HOST, and what `--broker` took): a
 * bare `host` or `host:port` means `mqtt://host:1883` or `mqtt://host:port`.
 */
export const brokerAddress = z.string().transform((text, ctx) => {
  if (text.includes("://")) {
    const problem = brokerUrlProblem(text);
    if (problem === undefined) return text;
    ctx.issues.push({ code: "custom", message: problem, input: text });
    return z.NEVER;
  }
  const url = `mqtt://${text}${/:\d+$/.test(text) ? "" : `:${DEFAULT_MQTT_PORT}`}`;
  if (brokerUrlProblem(url) === undefined) return url;
  const message = `${JSON.stringify(text)} is neither a URL such as ${DEFAULT_MQTT_URL} nor a host name`;
  ctx.issues.push({ code: "custom", message, input: text });
  return z.NEVER;
});

/** Where the broker is: MQTT_URL, or the reference system's MQTT_HOST. */
export const MQTT_ADDRESS_SETTINGS = defineSettings({
  MQTT_URL: {
    env: ["MQTT_URL"],
    help: `the MQTT broker: ${MQTT_SCHEMES.map((s) => `${s}://`).join(", ")}`,
    doc: "the MQTT broker: `mqtt://`, `mqtts://` for TLS (with `MQTT_CA_FILE`), or `tcp://`, `ssl://`, `tls://`, `ws://`, `wss://`",
    default: DEFAULT_MQTT_URL,
    schema: brokerUrl.optional(),
  },
  MQTT_HOST: {
    env: ["MQTT_HOST"],
    help: "the reference system's name for it: a host name (port 1883) or a URL; MQTT_URL wins",
    schema: brokerAddress.optional(),
  },
});

/** How a client logs in and checks the broker's certificate. */
export const MQTT_CLIENT_SETTINGS = defineSettings({
  MQTT_USERNAME: {
    env: ["MQTT_USERNAME"],
    help: "the broker's user name",
    secret: "mqtt-username",
    schema: z.string().optional(),
  },
  MQTT_PASSWORD: {
    env: ["MQTT_PASSWORD"],
    help: "the broker's password",
    secret: "mqtt-password",
    schema: z.string().optional(),
  },
  MQTT_CA_FILE: {
    env: ["MQTT_CA_FILE"],
    help: "PEM file of the CA that signed the broker's certificate (mqtts://)",
    schema: z
      .string()
      .refine((file) => existsSync(file), { error: (issue) => `no such file: ${String(issue.input)}` })
      .optional(),
  },
});

/** Every MQTT client's settings (predict, health, the connector, the writer, the simulator, fanwatch start). */
export const MQTT_SETTINGS = defineSettings({ ...MQTT_ADDRESS_SETTINGS, ...MQTT_CLIENT_SETTINGS });

/**
 * The broker and how to log in: `given.url` (a flag, or a module's own setting such as the
 * connector's `broker`, named by `given.from`) beats MQTT_URL, which beats MQTT_HOST; MQTT_USERNAME
 * and MQTT_PASSWORD or their files or secrets (under `given.secretPath`, by default SECRET_MOUNT_PATH);
 * MQTT_CA_FILE. From the environment unless `env` is given.
 */
export function mqttSettingsFromEnv(
  env?: NodeJS.ProcessEnv,
  given: { url?: string | undefined; from?: string | undefined; secretPath?: string | undefined } = {},
): MqttSettings {
  let url = given.url;
  let from = given.url === undefined ? undefined : (given.from ?? "given");
  if (url === undefined) {
    const address = readSettingsFrom(MQTT_ADDRESS_SETTINGS, env);
    url = address.values.MQTT_URL ?? address.values.MQTT_HOST;
    from = address.from.MQTT_URL ?? address.from.MQTT_HOST;
  }
  const {
    MQTT_USERNAME: username,
    MQTT_PASSWORD: password,
    MQTT_CA_FILE: caFile,
  } = readSettingsFrom(MQTT_CLIENT_SETTINGS, env, {}, { secretPath: given.secretPath }).values;
  return {
    url: url ?? DEFAULT_MQTT_URL,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    ...(caFile === undefined ? {} : { caFile }),
    ...(from === undefined ? {} : { from }),
  };
}

/** URL without credentials, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return "(invalid url)";
  }
}
