// The fan page's timeline: the fan's story from health's history (GET /ui/api/history), newest
// first: each episode with its transitions, actions, findings and notifications sent, and between
// them what happened outside any episode (maintenance planned on a healthy fan, back to ok,
// silent), each with who and when. The newest page is read again when the fan changes; older
// pages are read on request ("Older episodes", with the answer's cursor) and kept.
import { basis, clock, etaInterval, percent } from "/ui/fan-format.js";

const $ = (id) => document.getElementById(id);

/** Every episode read so far, by alarmId, and every transition outside an episode, by id. */
const episodes = new Map();
const others = new Map();
/** Where "Older episodes" goes on from (null: nothing older); once older pages are shown, the oldest one's. */
let cursor = null;
let olderShown = false;
/** The last page read stopped early (health reads at most so many messages a page): said under the button. */
let truncated = false;

/** Reads the fan's newest page of history and shows it with what older pages were read; resolves to its newest episode (or null). */
export async function loadHistory(deviceID) {
  const page = await readPage(deviceID, null);
  if (page === null) return null;
  if (!olderShown) {
    cursor = page.cursor ?? null;
    truncated = page.truncated === true;
  }
  keep(page);
  render();
  return newestEpisode();
}

/** Reads the next older page and adds it to what is shown. */
export async function loadOlder(deviceID) {
  if (cursor === null) return;
  const page = await readPage(deviceID, cursor);
  if (page === null) return;
  olderShown = true;
  cursor = page.cursor ?? null;
  truncated = page.truncated === true;
  keep(page);
  render();
}

/** One page of the history, or null (and the reason shown) when it cannot be read. */
async function readPage(deviceID, from) {
  const query = new URLSearchParams({ deviceID });
  if (from !== null) query.set("cursor", from);
  const res = await fetch(`/ui/api/history?${query}`);
  const body = await res.json().catch(() => ({}));
  if (res.ok && Array.isArray(body.episodes)) return body;
  $("timeline-message").textContent = !res.ok
    ? res.status === 404
      ? "No history of this fan yet."
      : `History unavailable: ${body.error ?? `the page answered ${res.status}`}`
    : "History unavailable: the health function answered without episodes (a health function without history?)";
  if (res.status === 404) {
    episodes.clear();
    others.clear();
    cursor = null;
    render(false);
  }
  return null;
}

function keep(page) {
  for (const episode of page.episodes) episodes.set(episode.alarmId, episode);
  for (const t of Array.isArray(page.other) ? page.other : []) others.set(t.id ?? `${t.at} ${t.event}`, t);
}

function newestEpisode() {
  let newest = null;
  for (const e of episodes.values())
    if (newest === null || Date.parse(e.opened) > Date.parse(newest.opened)) newest = e;
  return newest;
}

/**
 * Episodes by when they opened and the transitions outside them by when they happened, newest
 * first; consecutive ones of the latter grouped as "Between episodes".
 */
function render(sayWhy = true) {
  const items = [
    ...[...episodes.values()].map((episode) => ({ at: Date.parse(episode.opened), episode })),
    ...[...others.values()].map((transition) => ({ at: Date.parse(transition.at), transition })),
  ].sort((a, b) => b.at - a.at);
  const nodes = [];
  let between = null;
  for (const item of items) {
    if (item.episode) {
      between = null;
      nodes.push(episodeNode(item.episode));
      continue;
    }
    if (between === null) {
      between = betweenNode();
      nodes.push(between);
    }
    between
      .querySelector("ol")
      .append(
        entryNode({ at: item.transition.at, kind: item.transition.event, text: transitionText(item.transition) }),
      );
  }
  $("timeline").replaceChildren(...nodes);
  if (sayWhy)
    $("timeline-message").textContent = episodes.size === 0 ? "No episodes yet: the fan has been healthy." : "";
  $("older").hidden = cursor === null;
  $("older-note").textContent =
    truncated && cursor !== null
      ? "The history is long: health stopped reading part-way; Older episodes reads on from there."
      : "";
}

function betweenNode() {
  const section = document.createElement("section");
  section.className = "between";
  const title = document.createElement("h3");
  title.textContent = episodes.size === 0 ? "Outside any episode" : "Between episodes";
  section.append(title, document.createElement("ol"));
  return section;
}

function episodeNode(episode) {
  const section = document.createElement("section");
  section.className = "episode";
  section.dataset.alarm = episode.alarmId;
  const title = document.createElement("h3");
  title.textContent = `${episode.severity && episode.severity !== "none" ? `${episode.state} (${episode.severity})` : episode.state}${episode.cause ? ` · ${episode.cause}` : ""} · ${clock(episode.opened)} – ${episode.closed ? clock(episode.closed) : "open"}${episode.model ? ` · raised by ${episode.model}` : ""}${episode.partial ? " · partly read: newer entries of it on the page above" : ""}`;
  const list = document.createElement("ol");
  const entries = [
    ...(episode.transitions ?? []).map((t) => ({ at: t.at, kind: t.event, text: transitionText(t) })),
    ...(episode.notifications ?? []).map((n) => ({
      at: n.at,
      kind: "notification",
      text: `${n.event} sent to ${n.target}${n.outcome === "redriven" ? " (again, after a redrive)" : ""}`,
    })),
    ...(episode.findings ?? [])
      .filter((f) => !(episode.transitions ?? []).some((t) => t.event === "finding" && t.at === f.at))
      .map((f) => ({ at: f.at, kind: "finding", text: findingText(f) })),
  ].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  list.append(...entries.map(entryNode));
  section.append(title, list);
  return section;
}

function entryNode(entry) {
  const li = document.createElement("li");
  li.dataset.kind = entry.kind;
  const when = document.createElement("time");
  when.dateTime = entry.at;
  when.textContent = clock(entry.at);
  li.append(when, ` ${entry.text}`);
  return li;
}

const by = (t) => (t.by ? ` by ${t.by}` : "");
const note = (t) => (t.note ? `: “${t.note}”` : "");

function findingText(f) {
  const what = [f.part && `part ${f.part}`, f.sensor && `sensor ${f.sensor}`].filter(Boolean).join(", ");
  return `finding: ${f.result}${what ? ` (${what})` : ""}${by(f)}${note(f)}`;
}

/** When the transition expected the alarm, as it said then: its interval's times, or its eta; "" without either. */
function expectedThen(t) {
  if (t.etaInterval) return `alarm expected ${etaInterval(t.etaInterval, { relative: false })}`;
  return t.eta ? `alarm expected ${clock(t.eta)}` : "";
}

function transitionText(t) {
  switch (t.event) {
    case "acknowledged":
      return `acknowledged${by(t)}${note(t)}`;
    case "shelved":
      return `shelved until ${clock(t.until)}${by(t)}${note(t)}`;
    case "maintenance":
      return `maintenance ${clock(t.from ?? t.at)} – ${clock(t.until)}${by(t)}${note(t)}`;
    case "resumed":
      return "notifications resume";
    case "commented":
      return `comment${by(t)}${note(t)}`;
    case "assigned":
      return `assigned to ${t.to ?? t.assignedTo ?? "?"}${by(t)}`;
    case "finding":
      return findingText({ ...t, ...(t.finding ?? {}) });
    case "escalated":
      return [`escalated to ${t.severity}`, expectedThen(t), t.model ? `model ${t.model}` : ""]
        .filter((part) => part !== "")
        .join(" · ");
    case "ok":
      return "ok: healthy again";
    case "silent":
      return "silent: no readings from the fan";
    default: {
      const parts = [t.event];
      if (t.cause) parts.push(`cause ${t.cause}`);
      if (t.event === "warning" || t.event === "alarm") parts.push(`probability ${percent(t.probability)}`);
      if (expectedThen(t)) parts.push(expectedThen(t));
      if (basis(t)) parts.push(basis(t));
      // The model whose prediction made it: what a warning or an alarm is traced to.
      if (t.model) parts.push(`model ${t.model}`);
      if (t.muted) parts.push(`not notified (${t.muted})`);
      return parts.join(" · ");
    }
  }
}
