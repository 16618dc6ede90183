/**
 * MQTT topic-filter matching (MQTT 3.1.1 §4.7): `+` matches one level, a trailing `#` any number
 * of levels including none, and wildcards never match a topic starting with `$` at the first level.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const f = unshare(filter).split("/");
  const t = topic.split("/");
  if (topic.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === "#") return i === f.length - 1;
    if (i >= t.length) return false;
    if (level !== "+" && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** `$share/<group>/<filter>` → `<filter>`: a shared subscription delivers topics of its filter. */
function unshare(filter: string): string {
  const m = /^\$share\/[^/]+\/(.*)$/.exec(filter);
  return m === null ? filter : (m[1] as string);
}
