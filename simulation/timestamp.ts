/** `YYYY-MM-DD HH:MM:SS` in UTC, the reference system's timeStamp format. */
export function formatTime(date: Date): string {
  return date.toISOString().slice(0, 19).replace("T", " ");
}
