// One fan's page, /ui/fans/<deviceID>: its sensors and fault probability over the last minutes
// (GET /ui/api/fans/<id>, every 2 s), what drives its alarm, when a warning is expected to become
// one, its history (GET /ui/api/history), and a form for every action on it (POST /ui/api/health
// with the session's CSRF token, GET /ui/api/session).
import { probabilityChart, sensorChart } from "/ui/fan-charts.js";

const SENSORS = ["rotation", "temperature", "vibration", "sound"];
const deviceID = decodeURIComponent(location.pathname.split("/").pop() ?? "");
const $ = (id) => document.getElementById(id);
const percent = (p) => `${(p * 100).toFixed(1)}%`;
const hhmm = (at) => new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
/** "14:05", or "8 Dec, 14:05" when it is not today. */
function clock(at) {
  const date = new Date(at);
  return date.toDateString() === new Date().toDateString()
    ? hhmm(at)
    : `${date.toLocaleDateString([], { day: "numeric", month: "short" })}, ${hhmm(at)}`;
}
/** "in about 2 h (14:05)", "in about 6 min (14:05)", or "now (14:05)" once it has passed. */
function eta(iso) {
  const at = Date.parse(iso);
  const minutes = Math.round((at - Date.now()) / 60_000);
  const when =
    minutes <= 0 ? "now" : minutes < 90 ? `in about ${minutes} min` : `in about ${Math.round(minutes / 60)} h`;
  return `${when} (${clock(at)})`;
}

let session = null;
let detail = null;
/** The newest episode the history lists: what a comment, an assignment or a finding is about once the record's episode has closed. */
let lastEpisode = null;
const charts = {};

document.title = `fanwatch · fan ${deviceID}`;
$("title").textContent = `Fan ${deviceID}`;

// --- what the fan does now ---

async function loadDetail() {
  const res = await fetch(`/ui/api/fans/${encodeURIComponent(deviceID)}`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error ?? `the page answered ${res.status}`);
  detail = body;
  render(body);
}

function render(d) {
  const record = d.record;
  const open = d.state === "warning" || d.state === "alarm";
  $("state").dataset.state = d.state;
  $("state").textContent = d.state === "unknown" ? "no health yet" : `health: ${d.state}`;
  $("health").textContent =
    record === null
      ? "no record from the health function yet"
      : `${record.state}${record.severity === "none" ? "" : ` (${record.severity})`}${record.cause ? ` · cause: ${record.cause}` : ""} · since ${clock(record.since)}`;
  $("eta").textContent = record?.eta
    ? eta(record.eta)
    : d.state === "alarm"
      ? "in alarm now"
      : d.state === "warning"
        ? "no trend towards it"
        : "–";
  $("latest").textContent =
    d.latest.probability === null ? "no prediction yet" : `fault probability ${percent(d.latest.probability)}`;
  const { faulty, scored } = d.latest.recent;
  $("recent").textContent = scored === 0 ? "none scored yet" : `${faulty} of the last ${scored} scored faulty`;
  $("episode").textContent = episodeText(record);
  $("held").textContent = heldText(record);
  for (const form of document.querySelectorAll('form[data-action="acknowledge"]'))
    form.hidden = !(open && record && !record.acknowledged);
  renderCharts(d);
  renderContributions(record);
}

function episodeText(record) {
  if (!record?.alarmId) return "none open";
  const parts = [record.acknowledged ? `acknowledged by ${record.acknowledgedBy ?? "someone"}` : "not acknowledged"];
  if (record.assignedTo) parts.push(`assigned to ${record.assignedTo}`);
  if (record.finding) parts.push(`finding: ${record.finding.result}`);
  return parts.join(" · ");
}

function heldText(record) {
  if (!record) return "";
  const now = Date.now();
  const m = record.maintenance;
  if (m && Date.parse(m.until) > now)
    return Date.parse(m.from) <= now
      ? `in maintenance until ${clock(m.until)} by ${m.by}: alarms are recorded, not notified`
      : `maintenance planned ${clock(m.from)} – ${clock(m.until)} by ${m.by}`;
  if (record.shelvedUntil && Date.parse(record.shelvedUntil) > now)
    return `shelved until ${clock(record.shelvedUntil)}${record.shelvedBy ? ` by ${record.shelvedBy}` : ""}: no notifications until then`;
  return "";
}

function renderCharts(d) {
  for (const sensor of SENSORS) {
    if (!charts[sensor]) {
      const box = document.createElement("div");
      box.className = "sensor-chart";
      box.dataset.sensor = sensor;
      $("sensor-charts").append(box);
      charts[sensor] = sensorChart(box, sensor, d.healthy[sensor]);
    }
    charts[sensor].update(d.readings.at, d.readings[sensor]);
  }
  charts.probability ??= probabilityChart($("probability-chart"));
  charts.probability.update(d.predictions.at, d.predictions.probability, d.threshold);
}

/** Each sensor's contribution to the fault probability (its Shapley value against a healthy reading), as bars from zero. */
function renderContributions(record) {
  const contributions = record?.contributions;
  $("contributions-panel").hidden = !contributions;
  if (!contributions) return;
  const largest = Math.max(...SENSORS.map((s) => Math.abs(contributions[s])), 1e-9);
  const twoSided = SENSORS.some((s) => contributions[s] < 0);
  $("contributions").dataset.twoSided = String(twoSided);
  $("contributions").replaceChildren(
    ...SENSORS.map((sensor) => {
      const value = contributions[sensor];
      const row = document.createElement("div");
      row.className = "contribution";
      row.dataset.sensor = sensor;
      if (sensor === record.cause) row.classList.add("cause");
      const name = document.createElement("span");
      name.textContent = sensor;
      const track = document.createElement("span");
      track.className = "track";
      const bar = document.createElement("span");
      bar.className = value < 0 ? "bar negative" : "bar";
      const share = (Math.abs(value) / largest) * (twoSided ? 50 : 100);
      bar.style.width = `${share}%`;
      bar.style.left = twoSided ? (value < 0 ? `${50 - share}%` : "50%") : "0";
      track.append(bar);
      const number = document.createElement("span");
      number.className = "value";
      number.textContent = `${value >= 0 ? "+" : "−"}${(Math.abs(value) * 100).toFixed(1)} pts`;
      row.append(name, track, number);
      return row;
    }),
  );
}

// --- the timeline ---

async function loadHistory() {
  const res = await fetch(`/ui/api/history?deviceID=${encodeURIComponent(deviceID)}`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    lastEpisode = null;
    $("timeline").replaceChildren();
    $("timeline-message").textContent =
      res.status === 404
        ? "No history of this fan yet."
        : `History unavailable: ${body.error ?? `the page answered ${res.status}`}`;
    return;
  }
  if (!Array.isArray(body.episodes)) {
    lastEpisode = null;
    $("timeline").replaceChildren();
    $("timeline-message").textContent =
      "History unavailable: the health function answered without episodes (a health function without history?)";
    return;
  }
  const episodes = body.episodes;
  lastEpisode = episodes[0] ?? null;
  $("timeline-message").textContent = episodes.length === 0 ? "No episodes yet: the fan has been healthy." : "";
  $("timeline").replaceChildren(...episodes.map(episodeNode));
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
      text: `notified ${n.target} of ${n.event}: ${n.outcome}`,
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

// --- acting ---

async function loadSession() {
  try {
    const res = await fetch("/ui/api/session");
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error ?? `the page answered ${res.status}`);
    session = body;
  } catch (error) {
    session = null;
    $("who").textContent = `Actions unavailable: ${error.message}`;
    $("action-forms").hidden = true;
    return;
  }
  const { signIn, user, canAct } = session;
  $("by-label").hidden = signIn !== "off";
  $("action-forms").hidden = !canAct;
  if (signIn === "off")
    $("who").textContent = "No sign-in here (this machine only): give your name, it is recorded with what you do.";
  else if (user === null) {
    $("who").textContent = "Not signed in: you can see, not act. ";
    const link = document.createElement("a");
    link.href = `/ui/signin?next=${encodeURIComponent(location.pathname)}`;
    link.textContent = "Sign in";
    $("who").append(link);
  } else
    $("who").textContent = canAct
      ? `Signed in as ${user.name} (${user.role}).`
      : `Signed in as ${user.role}: you can see, not act.`;
}

const iso = (local) => new Date(local).toISOString();

/** The body of a form's action; a string says what is missing. */
function actionBody(action, data) {
  const text = (name) => (data.get(name) ?? "").toString().trim();
  const optional = (name) => (text(name) === "" ? {} : { [name]: text(name) });
  const alarmId = detail?.record?.alarmId ?? lastEpisode?.alarmId ?? null;
  switch (action) {
    case "acknowledge":
      return { deviceID, action, ...optional("note") };
    case "shelve":
      return { deviceID, action, until: iso(text("until")), ...optional("note") };
    case "maintenance":
      return {
        deviceIDs: [deviceID],
        action,
        ...(text("from") === "" ? {} : { from: iso(text("from")) }),
        until: iso(text("until")),
        ...optional("note"),
      };
    default: {
      if (alarmId === null)
        return `Fan ${deviceID} has had no episode yet: nothing to ${action === "finding" ? "record a finding on" : action}.`;
      const fields =
        action === "comment"
          ? { note: text("note") }
          : action === "assign"
            ? { to: text("to") }
            : { result: text("result"), ...optional("part"), ...optional("sensor"), ...optional("note") };
      return { deviceID, alarmId, action, ...fields };
    }
  }
}

async function act(form) {
  const message = $("action-message");
  const action = form.dataset.action;
  const body = actionBody(action, new FormData(form));
  if (typeof body === "string") return void (message.textContent = body);
  if (session?.signIn === "off") {
    const name = $("by").value.trim();
    if (name === "") {
      message.textContent = "Enter your name first: it is recorded with what you do.";
      return void $("by").focus();
    }
    localStorage.setItem("fanwatch.by", name);
    body.by = name;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  message.textContent = "";
  message.classList.remove("failed");
  try {
    const res = await fetch("/ui/api/health", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": session?.csrf ?? "" },
      body: JSON.stringify(body),
    });
    const answer = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(answer.error ?? `the page answered ${res.status}`);
    message.textContent = `Done: ${action === "finding" ? "finding recorded" : `${action} recorded`}.`;
    form.reset();
    setDefaults();
    await Promise.all([loadDetail(), loadHistory()]);
  } catch (error) {
    message.textContent = `Not done (${action}): ${error.message}`;
    message.classList.add("failed");
  } finally {
    button.disabled = false;
  }
}

/** datetime-local's format of a time some hours from now. */
function hoursFromNow(hours) {
  const at = new Date(Date.now() + hours * 3_600_000);
  at.setMinutes(at.getMinutes() - at.getTimezoneOffset());
  return at.toISOString().slice(0, 16);
}

function setDefaults() {
  document.querySelector('form[data-action="shelve"] [name="until"]').value ||= hoursFromNow(2);
  document.querySelector('form[data-action="maintenance"] [name="until"]').value ||= hoursFromNow(4);
}

for (const form of document.querySelectorAll("#action-forms form"))
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(form);
  });
$("by").value = localStorage.getItem("fanwatch.by") ?? "";
setDefaults();

// --- keeping up ---

async function refresh() {
  try {
    await loadDetail();
    $("error").hidden = true;
    $("connection").textContent = `live · ${new Date().toLocaleTimeString()}`;
    $("connection").classList.remove("lost");
  } catch (error) {
    $("error").hidden = false;
    $("error").textContent = `Fan ${deviceID}: ${error.message}`;
    $("connection").textContent = "not updated";
    $("connection").classList.add("lost");
  }
}

await Promise.all([loadSession(), refresh(), loadHistory()]);
setInterval(refresh, 2_000);
setInterval(() => void loadHistory(), 5_000);
