import { z } from "zod";
import { FEATURES } from "./features.js";

/**
 * What the anomaly topic carries besides predictions: a reading of a fan that could not be scored
 * because a sensor read outside its physical limits (lib/domain/plausibility.ts). The reading
 * itself was dead-lettered with FANWATCH_READING_IMPLAUSIBLE; this tells health, so that repeated
 * notices open a sensor issue on the fan (FanSensor), not a fan alarm. Readers of the anomaly topic
 * that store or show predictions skip it: it has `implausible` and no `fault`.
 * `{"deviceID":"7","timeStamp":"…","implausible":{"sensor":"rotation","value":25000,"code":"FANWATCH_READING_IMPLAUSIBLE"}}`
 */
export const SensorNoticeSchema = z.object({
  deviceID: z.string().min(1).max(128),
  timeStamp: z.union([z.string(), z.number()]).optional(),
  implausible: z.object({
    sensor: z.enum(FEATURES),
    value: z.number(),
    code: z.literal("FANWATCH_READING_IMPLAUSIBLE"),
  }),
});
export type SensorNotice = z.infer<typeof SensorNoticeSchema>;

/** Whether a message of the anomaly topic is a sensor notice rather than a prediction (before validating either). */
export function isSensorNotice(value: unknown): boolean {
  return typeof value === "object" && value !== null && Object.hasOwn(value, "implausible");
}

/** The notice for a reading whose `implausible` sensor read outside its limits (its timeStamp kept when it had one). */
export function sensorNotice(
  deviceID: string,
  timeStamp: string | number | undefined,
  implausible: { sensor: SensorNotice["implausible"]["sensor"]; value: number },
): SensorNotice {
  return {
    deviceID,
    ...(timeStamp === undefined ? {} : { timeStamp }),
    implausible: { sensor: implausible.sensor, value: implausible.value, code: "FANWATCH_READING_IMPLAUSIBLE" },
  };
}
