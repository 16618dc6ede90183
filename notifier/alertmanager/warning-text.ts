import type { AlarmTransition, EtaInterval } from "../../lib/domain/health.js";

/**
 * A warning's eta interval, basis and drifting sensors as a person reads them in a notification:
 * "alarm expected in 2–5 h (between 2026-01-01 02:00 and 05:00 UTC, 80% interval)", "vibration
 * and temperature drifting from the fan's own baseline". Times are UTC: the notifier does not know
 * its reader's zone, and a mail is often read hours later, so the interval gives the date too.
 */

/** "2026-01-01 02:00", or "05:00" when it is the same day as `sameDayAs`. */
function utcMinute(iso: string, sameDayAs?: string): string {
  // A time no date can be made of (a transition from something other than health) is shown as sent.
  if (!Number.isFinite(Date.parse(iso))) return iso;
  const text = new Date(iso).toISOString();
  const day = text.slice(0, 10);
  const minute = text.slice(11, 16);
  return sameDayAs !== undefined &&
    Number.isFinite(Date.parse(sameDayAs)) &&
    new Date(sameDayAs).toISOString().slice(0, 10) === day
    ? minute
    : `${day} ${minute}`;
}

/** "in 2–5 h", "in 20–75 min", "within 3 h" (the interval opened already), counted from `at`. */
export function relativeInterval(interval: EtaInterval, at: string): string {
  const now = Date.parse(at);
  const fromMin = Math.round((Date.parse(interval.from) - now) / 60_000);
  const toMin = Math.round((Date.parse(interval.to) - now) / 60_000);
  if (!Number.isFinite(fromMin) || !Number.isFinite(toMin)) return "at an unknown time";
  if (toMin <= 0) return "now";
  const inHours = toMin >= 90;
  const amount = (minutes: number) => (inHours ? Math.round(minutes / 60) : minutes);
  const unit = inHours ? "h" : "min";
  if (fromMin <= 0) return `within ${amount(toMin)} ${unit}`;
  const [from, to] = [amount(fromMin), amount(toMin)];
  return from === to ? `in about ${to} ${unit}` : `in ${from}–${to} ${unit}`;
}

/** "in 2–5 h (between 2026-01-01 02:00 and 05:00 UTC, 80% interval)". */
export function etaIntervalText(interval: EtaInterval, at: string): string {
  const coverage = `${Math.round(interval.coverage * 100)}% interval`;
  const between = `between ${utcMinute(interval.from)} and ${utcMinute(interval.to, interval.from)} UTC`;
  return `${relativeInterval(interval, at)} (${between}, ${coverage})`;
}

/** "vibration", "vibration and temperature", "vibration, temperature and sound". */
export function sensorList(sensors: readonly string[]): string {
  if (sensors.length <= 1) return sensors.join("");
  return `${sensors.slice(0, -1).join(", ")} and ${sensors[sensors.length - 1] ?? ""}`;
}

/**
 * What the warning was judged against, and what drifts: "vibration and temperature drifting from
 * the fan's own baseline", "vibration drifting; judged against the fleet's healthy
 * ranges". Empty for a transition without them (an alarm, one published before they existed).
 */
export function basisText(t: Pick<AlarmTransition, "basis" | "sensors">): string {
  const drifting = t.sensors != null && t.sensors.length > 0 ? `${sensorList(t.sensors)} drifting` : "";
  switch (t.basis) {
    case "baseline":
      return `${drifting === "" ? "drifting" : drifting} from the fan's own baseline`;
    case "fleet-range":
      return `${drifting === "" ? "" : `${drifting}; `}judged against the fleet's healthy ranges`;
    default:
      return drifting;
  }
}

/**
 * What a warning's summary adds after its probability: when the alarm is expected (the interval
 * when there is one, else the eta as before) and what the warning was judged against.
 */
export function warningDetail(t: AlarmTransition): string {
  const expected =
    t.etaInterval != null
      ? `, alarm expected ${etaIntervalText(t.etaInterval, t.at)}`
      : t.eta !== null
        ? `, alarm expected by ${t.eta}`
        : "";
  const basis = basisText(t);
  return `${expected}${basis === "" ? "" : `; ${basis}`}`;
}
