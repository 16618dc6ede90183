// The fan page's timeline: the fan's episodes from health's history (GET /ui/api/history), newest
// first, each with its transitions, actions, findings and notifications sent, each with who and when.
import { clock, percent } from "/ui/fan-format.js";

const $ = (id) => document.getElementById(id);

/** Shows the fan's history; resolves to its newest episode, null when there is none (or no history). */
export async function loadHistory(deviceID) {
  const res = await fetch(`/ui/api/history?deviceID=${encodeURIComponent(deviceID)}`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    $("timeline").replaceChildren();
    $("timeline-message").textContent =
      res.status === 404
        ? "No history of this fan yet."
        : `History unavailable: ${body.error ?? `the page answered ${res.status}`}`;
    return null;
  }
  if (!Array.isArray(body.episodes)) {
    $("timeline").replaceChildren();
    $("timeline-message").textContent =
      "History unavailable: the health function answered without episodes (a health function without history?)";
    return null;
  }
  const episodes = body.episodes;
  $("timeline-message").textContent = episodes.length === 0 ? "No episodes yet: the fan has been healthy." : "";
  $("timeline").replaceChildren(...episodes.map(episodeNode));
  return episodes[0] ?? null;
}

function episodeNode(episode) {
  const section = document.createElement("section");
  section.className = "episode";
  section.dataset.alarm = episode.alarmId;
  const title = document.createElement("h3");
  title.textContent = `${episode.severity && episode.severity !== "none" ? `${episode.state} (${episode.severity})` : episode.state}${episode.cause ? ` · ${episode.cause}` : ""} · ${clock(episode.opened)} – ${episode.closed ? clock(episode.closed) : "open"}`;
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
  list.append(
    ...entries.map((entry) => {
      const li = document.createElement("li");
      li.dataset.kind = entry.kind;
      const when = document.createElement("time");
      when.dateTime = entry.at;
      when.textContent = clock(entry.at);
      li.append(when, ` ${entry.text}`);
      return li;
    }),
  );
  section.append(title, list);
  return section;
}

const by = (t) => (t.by ? ` by ${t.by}` : "");
const note = (t) => (t.note ? `: “${t.note}”` : "");

function findingText(f) {
  const what = [f.part && `part ${f.part}`, f.sensor && `sensor ${f.sensor}`].filter(Boolean).join(", ");
  return `finding: ${f.result}${what ? ` (${what})` : ""}${by(f)}${note(f)}`;
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
      return `escalated to ${t.severity}${t.eta ? ` · alarm expected ${clock(t.eta)}` : ""}`;
    default: {
      const parts = [t.event];
      if (t.cause) parts.push(`cause ${t.cause}`);
      if (t.event === "warning" || t.event === "alarm") parts.push(`probability ${percent(t.probability)}`);
      if (t.eta) parts.push(`alarm expected ${clock(t.eta)}`);
      if (t.muted) parts.push(`not notified (${t.muted})`);
      return parts.join(" · ");
    }
  }
}
