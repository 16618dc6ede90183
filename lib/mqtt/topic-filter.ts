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

/**
 * Whether some topic matches both filters: a subscription `fan/#` is served by a function whose
 * `topic` annotation is `fan/messages`, and `fan/+` by one annotated `+/messages`.
 */
export function filtersOverlap(a: string, b: string): boolean {
  const x = unshare(a).split("/");
  const y = unshare(b).split("/");
  const dollar = (levels: string[]) => levels[0]?.startsWith("$") === true;
  if (dollar(x) !== dollar(y) && (x[0] === "+" || x[0] === "#" || y[0] === "+" || y[0] === "#")) return false;
  for (let i = 0; ; i++) {
    const p = x[i];
    const q = y[i];
    if (p === "#" || q === "#") return true;
    if (p === undefined || q === undefined) return p === q;
    if (p !== "+" && q !== "+" && p !== q) return false;
  }
}

/** `$share/<group>/<filter>` → `<filter>`: a shared subscription delivers topics of its filter. */
function unshare(filter: string): string {
  const m = /^\$share\/[^/]+\/(.*)$/.exec(filter);
  return m === null ? filter : (m[1] as string);
}
