// The live fleet page: one tile per fan with its health (state, cause, time to alarm) and small
// charts of the four sensors, each a link to the fan's own page (fan.js); the open alarms, each
// with an Acknowledge button that calls the health function through the page's API; a form to
// plan maintenance on several fans at once; the health transitions; the dead letters. Fed by
// server-sent events from /ui/events.
import { basis, etaInterval } from "/ui/fan-format.js";
import { postHealthAction } from "/ui/health-action.js";
import { fansFrame, startFansPanel } from "/ui/fans-panel.js";
import { startModelsPanel } from "/ui/models-panel.js";

const SENSORS = [
  ["rotation", "rpm"],
  ["temperature", "°C"],
  ["vibration", ""],
  ["sound", "dB"],
];
const SVG = "http://www.w3.org/2000/svg";
const tiles = new Map();
/** Alarm rows by alarm id, kept across frames so that a note being typed is not lost. */
const rows = new Map();
/**
 * Alarms acknowledged from this page, shown so until a frame says so too (it follows within a
 * second or two), for 10 s at most: after that the frames are the truth (a re-raised alarm may be
 * unacknowledged again).
 */
const acknowledgedHere = new Map();
function mine(alarmId, acknowledged) {
  const entry = acknowledgedHere.get(alarmId);
  if (entry === undefined) return undefined;
  if (acknowledged || entry.until < Date.now()) {
    acknowledgedHere.delete(alarmId);
    return undefined;
  }
  return entry;
}
const $ = (id) => document.getElementById(id);
const number = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
const time = (at) => new Date(at).toLocaleTimeString();
/** "18:00", or "8 Dec, 18:00" when it is not today. */
function clock(at) {
  const date = new Date(at);
  const hhmm = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  return date.toDateString() === new Date().toDateString()
    ? hhmm
    : `${date.toLocaleDateString([], { day: "numeric", month: "short" })}, ${hhmm}`;
}
const percent = (p) => `${(p * 100).toFixed(1)}%`;

// A notification's link names the fan (/?fan=<id>, redirected to /ui/?fan=<id>): it opens the fan's own page.
const linkedFan = new URLSearchParams(location.search).get("fan");
if (linkedFan) location.replace(`/ui/fans/${encodeURIComponent(linkedFan)}`);

function tileFor(fan) {
  let tile = tiles.get(fan.deviceID);
  if (tile) return tile;
  const node = $("tile").content.firstElementChild.cloneNode(true);
  node.dataset.fan = fan.deviceID;
  const open = node.querySelector("a.open");
  open.textContent = `Fan ${fan.deviceID}`;
  open.href = `/ui/fans/${encodeURIComponent(fan.deviceID)}`;
  const charts = node.querySelector(".charts");
  const lines = {};
  for (const [sensor, unit] of SENSORS) {
    const chart = document.createElement("div");
    chart.className = "chart";
    const label = document.createElement("span");
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 100 20");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    const line = document.createElementNS(SVG, "polyline");
    svg.append(line);
    chart.append(label, svg);
    charts.append(chart);
    lines[sensor] = { label, line, unit };
  }
  tile = { node, lines };
  tiles.set(fan.deviceID, tile);
  return tile;
}

function draw(line, points) {
  if (points.length < 2) return line.setAttribute("points", "");
  const min = Math.min(...points);
  const span = Math.max(...points) - min || 1;
  const step = 100 / (points.length - 1);
  line.setAttribute(
    "points",
    points.map((v, i) => `${(i * step).toFixed(1)},${(19 - ((v - min) / span) * 18).toFixed(1)}`).join(" "),
  );
}

/** "in 6 min (21:14:05)", or "now" once it has passed. */
function eta(iso) {
  const at = Date.parse(iso);
  const minutes = Math.round((at - Date.now()) / 60_000);
  return `${minutes <= 0 ? "now" : minutes < 90 ? `in ${minutes} min` : `in ${number.format(minutes / 60)} h`} (${time(at)})`;
}

/** "alarm expected between 14:05 and 17:40 (80% interval, in 2–5 h)", or by its eta alone when it has no interval; "" without either. */
function expected(warning) {
  if (warning.etaInterval) return `alarm expected ${etaInterval(warning.etaInterval)}`;
  return warning.eta ? `alarm expected ${eta(warning.eta)}` : "";
}

/**
 * Why the fan's notifications are held, while they are: "shelved until 18:00 by Ana", "in
 * maintenance until 8 Dec, 12:00 by Ops" (or "maintenance planned 07:00 – 12:00 by Ops"). The
 * health function ends both once their time has passed; until its next frame says so the clock
 * here does.
 */
function muting(health) {
  if (!health) return { kind: "", text: "" };
  const now = Date.now();
  const window = health.maintenance;
  if (window && Date.parse(window.until) > now) {
    const by = window.by ? ` by ${window.by}` : "";
    return Date.parse(window.from) <= now
      ? { kind: "maintenance", text: `in maintenance until ${clock(window.until)}${by}` }
      : { kind: "planned", text: `maintenance planned ${clock(window.from)} – ${clock(window.until)}${by}` };
  }
  if (health.shelvedUntil && Date.parse(health.shelvedUntil) > now)
    return {
      kind: "shelved",
      text: `shelved until ${clock(health.shelvedUntil)}${health.shelvedBy ? ` by ${health.shelvedBy}` : ""}`,
    };
  return { kind: "", text: "" };
}

/** What each refusal code of a dead letter means, as the header's tooltip says it. */
const REFUSALS = {
  FANWATCH_DEVICE_UNKNOWN: "unknown device",
  FANWATCH_REGISTRY_FULL: "too many pending",
  FANWATCH_IDENTITY_MISMATCH: "identity mismatch",
  FANWATCH_READING_IMPLAUSIBLE: "implausible",
  FANWATCH_DEVICE_ID_INVALID: "invalid id",
};

/** "sensor issue: rotation stuck since 18:02": a sensor fault, for an electrician, not a fan fault. */
function sensorText(issue) {
  const value =
    issue.cause === "implausible" && typeof issue.value === "number" ? ` (${number.format(issue.value)})` : "";
  return `sensor issue: ${issue.sensor} ${issue.cause}${value}${issue.since ? ` since ${clock(issue.since)}` : ""}`;
}

function render(snapshot) {
  const { totals } = snapshot;
  // With a registry the fans are its active ones, and pending fans a number of their own; without,
  // the fans this page has seen (the numbers then need not add up).
  $("fans").textContent = number.format(totals.fans);
  $("fans-label").textContent = totals.source === "registry" ? "fans" : "fans seen";
  $("fans").title =
    totals.source === "registry"
      ? `the fans active in the registry${totals.unreported > 0 ? `; ${totals.unreported} not reported yet` : ""}`
      : totals.source === "awaiting-registry"
        ? "the fans this page has seen: its registry cannot be read yet (NATS away); it tries again every 5 s"
        : "the fans this page has seen: it has no registry";
  $("pending-total").hidden = totals.source !== "registry";
  $("pending").textContent = number.format(totals.pending);
  const refused = Object.entries(totals.refused);
  $("refused").textContent = number.format(refused.reduce((sum, [, n]) => sum + n, 0));
  $("refused").title =
    `readings refused since the page started: ${refused.map(([code, n]) => `${REFUSALS[code] ?? code} ${n}`).join(", ")}; sensor notices ${totals.sensorNotices}`;
  fansFrame(totals);
  $("in-alarm").textContent = number.format(totals.states.alarm);
  $("warnings").textContent = number.format(totals.states.warning);
  $("unacknowledged").textContent = number.format(totals.unacknowledged);
  $("rate").textContent = number.format(snapshot.rates.readingsPerSecond);
  $("predictions").textContent = number.format(totals.predictions);
  $("dead-letters").textContent = number.format(totals.deadLetters);
  renderReplicas(snapshot.functions);
  $("health-error").hidden = snapshot.healthError === null;
  $("health-error").textContent =
    snapshot.healthError === null ? "" : `Fan health unavailable: ${snapshot.healthError}`;
  const container = $("tiles");
  snapshot.fans.forEach((fan, index) => {
    const { node, lines } = tileFor(fan);
    const health = fan.health;
    const open = fan.state === "alarm" || fan.state === "warning";
    const acknowledged = open && health !== null && (health.acknowledged || mine(health.alarmId, false) !== undefined);
    node.dataset.state = fan.state;
    node.dataset.acknowledged = String(acknowledged);
    node.querySelector(".state").textContent =
      fan.state === "unknown"
        ? "health: not yet known"
        : `health: ${fan.state}${acknowledged ? " · acknowledged" : ""}`;
    node.dataset.registration = fan.registration ?? "";
    node.querySelector(".registration").textContent =
      fan.registration === "pending" ? "pending: waiting for an admin's Approve" : "";
    node.querySelector(".sensor-issue").textContent = fan.sensor ? sensorText(fan.sensor) : "";
    node.querySelector(".cause").textContent = health?.cause ? `cause: ${health.cause}` : "";
    node.querySelector(".eta").textContent = health ? expected(health) : "";
    node.querySelector(".basis").textContent = health ? basis(health) : "";
    const held = muting(health);
    node.dataset.muted = held.kind;
    node.querySelector(".muting").textContent = held.text;
    // The health state above is the health function's (smoothed over many predictions); these two
    // lines are the model's verdicts on single readings, which a healthy fan has faulty now and then.
    node.querySelector(".probability").textContent =
      fan.probability === null
        ? "latest reading: not scored yet"
        : `latest reading: fault probability ${percent(fan.probability)}`;
    node.querySelector(".recent").textContent =
      fan.recent.scored === 0 ? "" : `${fan.recent.faulty} of the last ${fan.recent.scored} readings scored faulty`;
    for (const [sensor, { label, line, unit }] of Object.entries(lines)) {
      const points = fan.history[sensor];
      const last = points[points.length - 1];
      label.textContent = `${sensor} ${last === undefined ? "–" : last}${unit ? ` ${unit}` : ""}`;
      draw(line, points);
    }
    if (container.children[index] !== node) container.insertBefore(node, container.children[index] ?? null);
  });
  // Fans the server has forgotten (silent for a while) leave the page.
  const shown = new Set(snapshot.fans.map((fan) => fan.deviceID));
  for (const [id, { node }] of tiles) {
    if (shown.has(id)) continue;
    node.remove();
    tiles.delete(id);
  }
  renderAlarms(snapshot.alarms, totals.openAlarms);
  $("feed").replaceChildren(...snapshot.feed.map((t) => item(transitionText(t))));
  $("notification-feed").replaceChildren(
    ...snapshot.notifications.map((n) =>
      item(
        `${time(Date.parse(n.at))} · ${n.status === "resolved" ? "resolved" : "notified"} ${n.alertname} fan ${n.deviceID}${n.severity === "" ? "" : ` (${n.severity})`} → ${n.receiver}`,
      ),
    ),
  );
  $("dead-letter-feed").replaceChildren(...snapshot.deadLetters.map((d) => item(`${time(d.at)} · ${d.error}`)));
}

/** "predict 2/3 · score 1 · health 1": ready replicas, and the desired count while they differ. */
function renderReplicas({ replicas, error }) {
  const cell = $("replicas");
  cell.title =
    error === null
      ? "ready replicas of each function, / the desired count while they differ"
      : `not read from the gateway: ${error}`;
  if (replicas.length === 0) return void (cell.textContent = "–");
  const items = replicas.map((f) => {
    const span = document.createElement("span");
    span.className = "function-replicas";
    span.dataset.function = f.name;
    span.dataset.replicas = String(f.replicas);
    span.dataset.available = String(f.availableReplicas);
    span.textContent = `${f.name} ${f.availableReplicas === f.replicas ? f.replicas : `${f.availableReplicas}/${f.replicas}`}`;
    return span;
  });
  cell.replaceChildren(...items.flatMap((span, i) => (i === 0 ? [span] : [" · ", span])));
}

function renderAlarms(alarms, open) {
  const list = $("alarms");
  $("alarm-count").textContent = open > alarms.length ? `(${alarms.length} of ${number.format(open)})` : `(${open})`;
  $("no-alarms").hidden = alarms.length > 0;
  const shown = new Set();
  alarms.forEach((alarm, index) => {
    const key = alarm.alarmId ?? `fan ${alarm.deviceID}`;
    shown.add(key);
    let row = rows.get(key);
    if (!row) {
      row = $("alarm").content.firstElementChild.cloneNode(true);
      row.dataset.fan = alarm.deviceID;
      row.querySelector(".acknowledge").addEventListener("click", () => acknowledge(row));
      rows.set(key, row);
    }
    const here = mine(alarm.alarmId, alarm.acknowledged);
    const acknowledged = alarm.acknowledged || here !== undefined;
    row.dataset.alarm = key;
    row.dataset.state = alarm.state;
    row.dataset.acknowledged = String(acknowledged);
    row.querySelector(".what").textContent =
      `Fan ${alarm.deviceID} · ${alarm.state}${alarm.severity === "none" ? "" : ` (${alarm.severity})`}${alarm.cause ? ` · ${alarm.cause}` : ""}`;
    const held = muting(alarm).text;
    const detail = [
      `since ${time(alarm.since)}`,
      `probability ${percent(alarm.probability)}`,
      expected(alarm),
      basis(alarm),
      // The model that raised it (or moved it since): an alarm is traced to its model.
      alarm.model ? `model ${alarm.model}` : "",
      held,
    ];
    row.querySelector(".detail").textContent = detail.filter((part) => part !== "").join(" · ");
    const by = alarm.acknowledged ? alarm.acknowledgedBy : here?.by;
    const note = alarm.acknowledged ? alarm.note : here?.note;
    row.querySelector(".acknowledged-by").textContent = acknowledged
      ? `acknowledged${by ? ` by ${by}` : ""}${note ? `: “${note}”` : ""}`
      : "";
    row.querySelector(".ack").hidden = acknowledged || !mayAct();
    if (list.children[index] !== row) list.insertBefore(row, list.children[index] ?? null);
  });
  for (const [key, row] of rows) {
    if (shown.has(key)) continue;
    row.remove();
    rows.delete(key);
  }
}

/**
 * Who this page acts for (GET /ui/api/session: the sign-in mode, the user, whether they may act,
 * the CSRF token every action carries); null until read or when it cannot be.
 */
let session = null;
async function loadSession() {
  try {
    const res = await fetch("/ui/api/session");
    if (!res.ok) throw new Error(`the page answered ${res.status}`);
    session = await res.json();
  } catch (error) {
    $("ack-message").textContent = `Acknowledging is unavailable: ${error.message}`;
    return;
  }
  // Signed in, the page names the user; with sign-in off (this machine only) the name is asked for.
  $("ack-by").closest("label").hidden = session.signIn !== "off";
  $("maintenance-panel").hidden = !session.canAct;
  startFansPanel(session, () => $("ack-by").value.trim());
  startModelsPanel();
  if (session.canAct) return;
  $("ack-message").textContent = `Signed in as ${session.user?.role ?? "viewer"}: you can see, not act.`;
  for (const row of rows.values()) row.querySelector(".ack").hidden = true; // listed before the session was read
}
const mayAct = () => session?.canAct !== false;

/** POST /ui/api/health {"deviceID","action":"acknowledge","by","note"}: the health function publishes the transition. */
async function acknowledge(row) {
  const message = $("ack-message");
  const signedIn = session !== null && session.signIn !== "off";
  const by = signedIn ? (session.user?.name ?? "") : $("ack-by").value.trim();
  if (by === "") {
    message.textContent = "Enter your name to acknowledge an alarm.";
    $("ack-by").focus();
    return;
  }
  if (!signedIn) localStorage.setItem("fanwatch.by", by);
  const button = row.querySelector(".acknowledge");
  const note = row.querySelector(".note").value.trim();
  button.disabled = true;
  message.textContent = "";
  try {
    const body = await postHealthAction(
      { deviceID: row.dataset.fan, action: "acknowledge", by, ...(note === "" ? {} : { note }) },
      session?.csrf,
    );
    const record = body.record ?? {};
    acknowledgedHere.set(record.alarmId ?? row.dataset.alarm, {
      by: record.acknowledgedBy ?? by,
      note: record.note ?? note,
      until: Date.now() + 10_000,
    });
    row.dataset.acknowledged = "true";
    row.querySelector(".acknowledged-by").textContent =
      `acknowledged by ${record.acknowledgedBy ?? by}${note ? `: “${note}”` : ""}`;
    row.querySelector(".ack").hidden = true;
    message.textContent = `Fan ${row.dataset.fan}: alarm acknowledged.`;
  } catch (error) {
    message.textContent = `Fan ${row.dataset.fan} not acknowledged: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

/** Fan ids as typed: separated by commas or spaces, each once; a string says what is wrong. */
function fanList(text) {
  const ids = [...new Set(text.split(/[\s,]+/).filter((id) => id !== ""))];
  if (ids.length === 0) return "Name at least one fan.";
  if (ids.length > 1_000) return `At most 1,000 fans at once (${ids.length} named): plan them in parts.`;
  const long = ids.find((id) => id.length > 128);
  return long === undefined ? ids : `A fan's id has at most 128 characters: ${long.slice(0, 20)}…`;
}

const iso = (local) => new Date(local).toISOString();

/** POST /ui/api/health {"deviceIDs","action":"maintenance","from","until","by","note"}: one window for every fan named. */
async function planMaintenance(form) {
  const message = $("maintenance-message");
  message.classList.remove("failed");
  const data = new FormData(form);
  const text = (name) => (data.get(name) ?? "").toString().trim();
  const deviceIDs = fanList(text("fans"));
  const signedIn = session !== null && session.signIn !== "off";
  const by = signedIn ? (session.user?.name ?? "") : $("ack-by").value.trim();
  const refusal =
    typeof deviceIDs === "string" ? deviceIDs : by === "" ? "Enter your name (under Open alarms) first." : null;
  if (refusal !== null) {
    message.textContent = refusal;
    return message.classList.add("failed");
  }
  if (!signedIn) localStorage.setItem("fanwatch.by", by);
  const body = {
    deviceIDs,
    action: "maintenance",
    ...(text("from") === "" ? {} : { from: iso(text("from")) }),
    until: iso(text("until")),
    by,
    ...(text("note") === "" ? {} : { note: text("note") }),
  };
  const button = form.querySelector("button");
  button.disabled = true;
  message.textContent = "";
  try {
    await postHealthAction(body, session?.csrf);
    const fans =
      deviceIDs.length === 1
        ? `fan ${deviceIDs[0]}`
        : deviceIDs.length <= 10
          ? `fans ${deviceIDs.join(", ")}`
          : `${number.format(deviceIDs.length)} fans`;
    message.textContent = `Maintenance planned for ${fans}: ${body.from ? clock(body.from) : "now"} – ${clock(body.until)}.`;
    form.reset();
    maintenanceDefaults();
  } catch (error) {
    message.textContent = `Maintenance not planned: ${error.message}`;
    message.classList.add("failed");
  } finally {
    button.disabled = false;
  }
}

/** Until, in datetime-local's format: four hours from now unless one is typed. */
function maintenanceDefaults() {
  const until = $("maintenance").elements.namedItem("until");
  const at = new Date(Date.now() + 4 * 3_600_000);
  at.setMinutes(at.getMinutes() - at.getTimezoneOffset());
  until.value ||= at.toISOString().slice(0, 16);
}

/** The transitions a prediction makes, which name its model in the feed. */
const PREDICTED = new Set(["warning", "alarm", "escalated", "cleared", "ok"]);

function transitionText(t) {
  const parts = [time(t.at), `Fan ${t.deviceID}`, t.event];
  const by = t.by ? `by ${t.by}${t.note ? `: “${t.note}”` : ""}` : "";
  if (t.event === "acknowledged") {
    if (by) parts.push(by);
  } else if (t.event === "shelved") {
    parts.push(`until ${clock(t.until)}`);
    if (by) parts.push(by);
  } else if (t.event === "maintenance") {
    parts.push(`${clock(t.from ?? t.at)} – ${clock(t.until)}`);
    if (by) parts.push(by);
  } else if (t.event === "resumed") {
    parts.push(`${t.state}: notifications resume`);
  } else {
    if (t.cause) parts.push(t.cause);
    if (t.event === "escalated") parts.push(t.severity);
    if (t.event === "warning" || t.event === "alarm") parts.push(percent(t.probability));
    if (t.eta || t.etaInterval) parts.push(expected(t));
    if (basis(t)) parts.push(basis(t));
    // The model whose prediction made it: what an alarm is traced to (silence and notes make none).
    if (t.model && PREDICTED.has(t.event)) parts.push(`model ${t.model}`);
  }
  // Recorded while the fan was shelved or in maintenance: not notified.
  if (t.muted) parts.push(`muted (${t.muted})`);
  return parts.join(" · ");
}

function item(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

$("ack-by").value = localStorage.getItem("fanwatch.by") ?? "";
maintenanceDefaults();
$("maintenance").addEventListener("submit", (event) => {
  event.preventDefault();
  void planMaintenance(event.currentTarget);
});
void loadSession();
const events = new EventSource("/ui/events");
events.onmessage = (event) => {
  $("connection").textContent = `live · ${time(Date.now())}`;
  $("connection").classList.remove("lost");
  render(JSON.parse(event.data));
};
events.onerror = () => {
  $("connection").textContent = "connection lost; retrying…";
  $("connection").classList.add("lost");
};
