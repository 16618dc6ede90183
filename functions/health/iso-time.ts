/**
 * `new Date(ms).toISOString()`, about fifteen times faster (50 ns against 750 ns): the day's part
 * is formatted once per day and kept, the time of day is arithmetic. The health rules format a
 * time for every prediction (the record's `lastSeen`); that was 1.4% of health's CPU.
 */
const DAY_MS = 86_400_000;
/** Up to the end of 9999: toISOString writes later years (and those before 1970 here) differently. */
const LAST_MS = 253_402_300_799_999;

let cachedDay = Number.NaN;
let cachedPrefix = "";

export function isoTime(ms: number): string {
  if (!(ms >= 0 && ms <= LAST_MS)) return new Date(ms).toISOString();
  const whole = Math.floor(ms); // as Date does: a time is whole milliseconds
  const day = Math.floor(whole / DAY_MS);
  if (day !== cachedDay) {
    cachedPrefix = new Date(day * DAY_MS).toISOString().slice(0, 11);
    cachedDay = day;
  }
  let rest = whole - day * DAY_MS;
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = Math.floor(rest / 1000);
  const millis = rest - seconds * 1000;
  return `${cachedPrefix}${two(hours)}:${two(minutes)}:${two(seconds)}.${millis < 10 ? "00" : millis < 100 ? "0" : ""}${millis}Z`;
}

function two(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}
