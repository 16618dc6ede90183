import { z } from "zod";
import { FEATURES, type FeatureName } from "../domain/features.js";
import { ownLimitProblem } from "../domain/plausibility.js";

/** A fan's place in the registry: waiting for a person (`pending`), let in (`active`), or gone (`retired`). */
export const FAN_STATES = ["pending", "active", "retired"] as const;
export type FanState = (typeof FAN_STATES)[number];

/**
 * The ids the registry holds: one MQTT topic level (`fan/messages/<id>`), one Mosquitto username
 * (`fan-<id>`; not ":", which ends a user name in Mosquitto's password file), one InfluxDB tag
 * value without escaping, one NATS KV key once "." is escaped (lib/nats/keys.ts).
 */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** Why `id` cannot be registered, or undefined when it can. */
export function deviceIdProblem(id: string): string | undefined {
  if (id.length === 0) return "a device id must not be empty";
  if (id.length > 64) return `a device id has at most 64 characters, not ${id.length}`;
  if (!DEVICE_ID_PATTERN.test(id))
    return `device id ${JSON.stringify(id.slice(0, 40))} may hold only letters, digits, ".", "_" and "-" (never "/", "+", "#", ":" or spaces: it is an MQTT topic level and a username)`;
  return undefined;
}

const limit = z
  .object({ min: z.number().finite(), max: z.number().finite() })
  .refine((l) => l.min < l.max, { error: "min must be below max" });

/** One fan (KV bucket `fan_registry`, key = id). */
export const FanRecordSchema = z.object({
  id: z.string().regex(DEVICE_ID_PATTERN),
  name: z.string().max(200).default(""),
  site: z.string().max(100).default(""),
  location: z.string().max(200).default(""),
  type: z.string().max(100).default(""),
  tags: z.array(z.string().max(100)).max(50).default([]),
  state: z.enum(FAN_STATES),
  /** ISO time the record was made (registered by a person, or pending on its first reading). */
  created: z.string(),
  /** Who approved it (a user name, `open` for UNKNOWN_DEVICE_POLICY=open, `import`…); absent until approved. */
  approvedBy: z.string().max(200).optional(),
  approvedAt: z.string().optional(),
  retiredBy: z.string().max(200).optional(),
  retiredAt: z.string().optional(),
  /** Sensor limits of this fan where they differ from DEFAULT_SENSOR_LIMITS (lib/domain/plausibility.ts). */
  limits: z
    .partialRecord(z.enum(FEATURES), limit)
    .superRefine((limits, ctx) => {
      for (const sensor of FEATURES) {
        const own = limits[sensor];
        const problem = own === undefined ? undefined : ownLimitProblem(sensor, own);
        if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem, path: [sensor] });
      }
    })
    .optional(),
  /**
   * The fan's MQTT password as Mosquitto's password file holds it (PBKDF2-SHA512, `$7$…`), never
   * the password: the broker's users are built from it (docs/registry.md, "Credentials").
   */
  mqttPasswordHash: z.string().max(300).optional(),
});
export type FanRecord = z.infer<typeof FanRecordSchema>;
export type SensorLimitOverrides = Partial<Record<FeatureName, { min: number; max: number }>>;
