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
