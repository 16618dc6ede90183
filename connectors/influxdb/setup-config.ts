import { z } from "zod";
import { ConfigError } from "../../lib/errors.js";
import { defineSettings, readSettings, SECRET_SETTINGS, type SettingValues } from "../../lib/infra/settings.js";
import { WRITER_SETTINGS } from "./config.js";
import { RETENTION_DURATION } from "./downsampling.js";

/** `fanwatch influx-setup`'s defaults, by variable. */
export const SETUP_DEFAULTS = Object.freeze({
  INFLUX_ADMIN_USERNAME: "admin",
  INFLUX_WRITE_USERNAME: "writer",
  INFLUX_READ_USERNAME: "reader",
  // 30 days of raw points: measured 2.9 MB per fan and day at 1 reading and 1 prediction a second,
  // so 87 MB per fan (docs/persistence.md, "Retention and downsampling", sizes the volume).
  INFLUX_RAW_RETENTION: "30d",
  // Two years of 1-minute aggregates: measured 97 KB per fan and day, 71 MB per fan.
  INFLUX_DOWNSAMPLED_RETENTION: "104w",
  INFLUX_SETUP_WAIT_SECONDS: 120,
});

const d = SETUP_DEFAULTS;

const duration = (fallback: string) =>
  z
    .string()
    .regex(RETENTION_DURATION, { error: "a whole number of hours, days or weeks, e.g. 30d or 104w" })
    .default(fallback);

export const SETUP_SETTINGS = defineSettings({
  INFLUX_URL: WRITER_SETTINGS.INFLUX_URL,
  INFLUX_DB: { ...WRITER_SETTINGS.INFLUX_DB, help: "the database" },
  INFLUX_ADMIN_USERNAME: {
    env: ["INFLUX_ADMIN_USERNAME"],
    help: "InfluxDB admin, created when InfluxDB has none",
    default: d.INFLUX_ADMIN_USERNAME,
    schema: z.string().min(1).default(d.INFLUX_ADMIN_USERNAME),
  },
  INFLUX_ADMIN_PASSWORD: {
    env: ["INFLUX_ADMIN_PASSWORD"],
    help: "the admin's password (required)",
    secret: "influx-admin-password",
    schema: z.string().min(1).optional(),
  },
  INFLUX_WRITE_USERNAME: {
    env: ["INFLUX_WRITE_USERNAME"],
    help: "the user that writes (Telegraf, the writer): WRITE on the database",
    default: d.INFLUX_WRITE_USERNAME,
    schema: z.string().min(1).default(d.INFLUX_WRITE_USERNAME),
  },
  INFLUX_WRITE_PASSWORD: {
    env: ["INFLUX_WRITE_PASSWORD"],
    help: "its password; unset: no write user",
    secret: "influx-write-password",
    schema: z.string().min(1).optional(),
  },
  INFLUX_READ_USERNAME: {
    env: ["INFLUX_READ_USERNAME"],
    help: "the user that reads (Grafana, fanwatch deadletters): READ on the database",
    default: d.INFLUX_READ_USERNAME,
    schema: z.string().min(1).default(d.INFLUX_READ_USERNAME),
  },
  INFLUX_READ_PASSWORD: {
    env: ["INFLUX_READ_PASSWORD"],
    help: "its password; unset: no read user",
    secret: "influx-read-password",
    schema: z.string().min(1).optional(),
  },
  INFLUX_RAW_RETENTION: {
    env: ["INFLUX_RAW_RETENTION"],
    flag: "--raw-retention <duration>",
    help: "how long raw points are kept (policy autogen)",
    default: d.INFLUX_RAW_RETENTION,
    schema: duration(d.INFLUX_RAW_RETENTION),
  },
  INFLUX_DOWNSAMPLED_RETENTION: {
    env: ["INFLUX_DOWNSAMPLED_RETENTION"],
    flag: "--downsampled-retention <duration>",
    help: "how long 1-minute aggregates are kept (policy downsampled)",
    default: d.INFLUX_DOWNSAMPLED_RETENTION,
    schema: duration(d.INFLUX_DOWNSAMPLED_RETENTION),
  },
  INFLUX_SETUP_WAIT_SECONDS: {
    env: ["INFLUX_SETUP_WAIT_SECONDS"],
    flag: "--wait-seconds <s>",
    help: "how long to wait for InfluxDB to answer /ping",
    default: d.INFLUX_SETUP_WAIT_SECONDS,
    schema: z.coerce.number().int().min(0).max(3600).default(d.INFLUX_SETUP_WAIT_SECONDS),
  },
  SECRET_MOUNT_PATH: SECRET_SETTINGS.SECRET_MOUNT_PATH,
});

export type SetupSettings = SettingValues<typeof SETUP_SETTINGS>;

export interface Credentials {
  username: string;
  password: string;
}

export interface SetupPlan {
  url: string;
  database: string;
  admin: Credentials;
  writer?: Credentials;
  reader?: Credentials;
  rawRetention: string;
  downsampledRetention: string;
  waitMs: number;
}

export function readSetupPlan(env?: NodeJS.ProcessEnv, given: Partial<SetupSettings> = {}): SetupPlan {
  const s = readSettings(SETUP_SETTINGS, env, given);
  if (s.INFLUX_URL === undefined) throw new ConfigError("INFLUX_URL is not set: which InfluxDB to set up?");
  if (s.INFLUX_ADMIN_PASSWORD === undefined)
    throw new ConfigError("INFLUX_ADMIN_PASSWORD (or INFLUX_ADMIN_PASSWORD_FILE) is not set: setup runs as the admin");
  const user = (username: string, password: string | undefined): Credentials | undefined =>
    password === undefined ? undefined : { username, password };
  const writer = user(s.INFLUX_WRITE_USERNAME, s.INFLUX_WRITE_PASSWORD);
  const reader = user(s.INFLUX_READ_USERNAME, s.INFLUX_READ_PASSWORD);
  return {
    url: s.INFLUX_URL.replace(/\/+$/, ""),
    database: s.INFLUX_DB ?? WRITER_SETTINGS.INFLUX_DB.default,
    admin: { username: s.INFLUX_ADMIN_USERNAME, password: s.INFLUX_ADMIN_PASSWORD },
    ...(writer === undefined ? {} : { writer }),
    ...(reader === undefined ? {} : { reader }),
    rawRetention: s.INFLUX_RAW_RETENTION,
    downsampledRetention: s.INFLUX_DOWNSAMPLED_RETENTION,
    waitMs: s.INFLUX_SETUP_WAIT_SECONDS * 1000,
  };
}
