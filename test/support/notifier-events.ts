import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { AlarmTransition, HealthEvent } from "../../lib/domain/health.js";
import { ensureHealthEventsStream, healthEventSubject } from "../../lib/nats/health-events.js";

let sequence = 0;

/** A transition as health makes it: a unique id, the site, the fan's record fields. */
export function makeTransition(
  deviceID: string,
  event: HealthEvent = "alarm",
  extra: Partial<AlarmTransition> = {},
): AlarmTransition {
  const at = new Date().toISOString();
  const n = ++sequence;
  const state = event === "warning" ? "warning" : event === "cleared" || event === "ok" ? event : "alarm";
  return {
    // Health's form, <deviceID>:<at ms>:<sequence> (the sequence rises for every fan here).
    id: `${deviceID}:${Date.parse(at)}:${n}`,
    event,
    deviceID,
    alarmId: `${deviceID}@${at}`,
    state,
    severity: state === "alarm" ? "major" : state === "warning" ? "minor" : "none",
    cause: "vibration",
    contributions: { rotation: 0.01, temperature: 0.02, vibration: 0.9, sound: 0.01 },
    probability: 0.93,
    eta: null,
    since: at,
    at,
    acknowledged: false,
    site: "local",
    ...extra,
  };
}

/**
 * Appends to health's event stream the way health does: `js.publish` to the fan's subject with the
 * transition id as the message id. Retries while NATS is away (a test restarting it), as health's
 * outbox does.
 */
export class HealthEventsPublisher {
  private constructor(readonly nc: NatsConnection) {}

  static async connect(url: string): Promise<HealthEventsPublisher> {
    const nc = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    await ensureHealthEventsStream(await jetstreamManager(nc), { maxAgeMs: 400 * 86_400_000, replicas: 1 });
    return new HealthEventsPublisher(nc);
  }

  async publish(transition: AlarmTransition): Promise<void> {
    const js = jetstream(this.nc, { timeout: 2_000 });
    const subject = healthEventSubject(transition.site, transition.deviceID);
    for (let attempt = 1; ; attempt++) {
      try {
        await js.publish(subject, JSON.stringify(transition), { msgID: transition.id });
        return;
      } catch (error) {
        if (attempt >= 60) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }

  /** Something that is not a transition, on a fan's subject (a bug elsewhere, or another writer). */
  async publishRaw(site: string, deviceID: string, payload: string): Promise<void> {
    await jetstream(this.nc).publish(healthEventSubject(site, deviceID), payload);
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}
