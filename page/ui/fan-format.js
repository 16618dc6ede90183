// Times and numbers as the fan's page writes them.
export const percent = (p) => `${(p * 100).toFixed(1)}%`;
const hhmm = (at) => new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
/** "14:05", or "8 Dec, 14:05" when it is not today. */
export function clock(at) {
  const date = new Date(at);
  return date.toDateString() === new Date().toDateString()
    ? hhmm(at)
    : `${date.toLocaleDateString([], { day: "numeric", month: "short" })}, ${hhmm(at)}`;
}
/** "in about 2 h (14:05)", "in about 6 min (14:05)", or "now (14:05)" once it has passed. */
export function eta(iso) {
  const at = Date.parse(iso);
  const minutes = Math.round((at - Date.now()) / 60_000);
  const when =
    minutes <= 0 ? "now" : minutes < 90 ? `in about ${minutes} min` : `in about ${Math.round(minutes / 60)} h`;
  return `${when} (${clock(at)})`;
}
/** "in 2–5 h", "in 20–75 min", "within 3 h" once the interval has opened: how far off a warning's interval is. */
function fromNow(from, to) {
  const fromMin = Math.round((Date.parse(from) - Date.now()) / 60_000);
  const toMin = Math.round((Date.parse(to) - Date.now()) / 60_000);
  if (toMin <= 0) return "now";
  const inHours = toMin >= 90;
  const amount = (minutes) => (inHours ? Math.round(minutes / 60) : minutes);
  const unit = inHours ? "h" : "min";
  if (fromMin <= 0) return `within ${amount(toMin)} ${unit}`;
  return amount(fromMin) === amount(toMin)
    ? `in about ${amount(toMin)} ${unit}`
    : `in ${amount(fromMin)}–${amount(toMin)} ${unit}`;
}
/** A warning's eta interval: "between 14:05 and 17:40 (80% interval, in 2–5 h)"; with `relative: false` (a past transition's) "between 14:05 and 17:40 (80% interval)". */
export function etaInterval({ from, to, coverage }, { relative = true } = {}) {
  const off = relative ? `, ${fromNow(from, to)}` : "";
  return `between ${clock(from)} and ${clock(to)} (${Math.round(coverage * 100)}% interval${off})`;
}
/**
 * What a warning was judged against, and what drifts: "vibration and temperature drifting from
 * the fan's own baseline", "vibration drifting; judged against the fleet's healthy
 * ranges"; "" for a record or transition without them (an alarm, an older health function).
 */
export function basis({ basis, sensors }) {
  const names = sensors ?? [];
  const list = names.length <= 1 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
  const drifting = list === "" ? "" : `${list} drifting`;
  if (basis === "baseline") return `${drifting || "drifting"} from the fan's own baseline`;
  if (basis === "fleet-range") return `${drifting ? `${drifting}; ` : ""}judged against the fleet's healthy ranges`;
  return drifting;
}
/** When a warning expects the alarm: its interval when it has one, else its eta ("in about 2 h (14:05)"); "" without either. */
export function expected(warning) {
  if (warning.etaInterval) return etaInterval(warning.etaInterval);
  return warning.eta ? eta(warning.eta) : "";
}
