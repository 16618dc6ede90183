// One fan's page, /ui/fans/<deviceID> (fan.html): its sensors and fault probability over the last
// minutes (GET /ui/api/fans/<id>, every 2 s; charts in fan-charts.js), what drives its alarm, when
// a warning is expected to become one; its history (fan-timeline.js), read again when the fan
// changes, and a form for every action on it (fan-actions.js).
import { setUpActions } from "/ui/fan-actions.js";
import { probabilityChart, sensorChart } from "/ui/fan-charts.js";
import { basis, clock, expected, percent } from "/ui/fan-format.js";
import { loadHistory, loadOlder } from "/ui/fan-timeline.js";

const SENSORS = ["rotation", "temperature", "vibration", "sound"];
/**
 * The history is read again when the fan's detail shows a change (below), and at least this often:
 * a change the page missed (it started after it, or the alarm topic dropped it) shows within a
 * minute. Reading a history costs health a walk of its stream, so it is not polled every few seconds.
 */
const HISTORY_FALLBACK_MS = 60_000;
const deviceID = decodeURIComponent(location.pathname.split("/").pop() ?? "");
const $ = (id) => document.getElementById(id);

let detail = null;
/** What of the fan's detail, when it changes, means its history has: see changeOf. */
let lastChange;
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
  // Beside the fan's state, not instead: a sensor fault is for an electrician, a fan fault for a mechanic.
  $("sensor-issue").textContent = d.sensor
    ? `sensor issue: ${d.sensor.sensor} ${d.sensor.cause}${d.sensor.since ? ` since ${clock(d.sensor.since)}` : ""}`
    : "";
  $("registration").textContent =
    d.registration === "pending"
      ? "pending: its readings are held back until an admin approves it"
      : d.registration === "retired"
        ? "retired: its history stays, it is no longer counted"
        : "";
  $("health").textContent =
    record === null
      ? "no record from the health function yet"
      : `${record.state}${record.severity === "none" ? "" : ` (${record.severity})`}${record.cause ? ` · cause: ${record.cause}` : ""} · since ${clock(record.since)}`;
  $("eta").textContent =
    record && expected(record)
      ? expected(record)
      : d.state === "alarm"
        ? "in alarm now"
        : d.state === "warning"
          ? "no trend towards it"
          : "–";
  $("basis").textContent = (record && basis(record)) || "–";
  $("latest").textContent =
    d.latest.probability === null ? "no prediction yet" : `fault probability ${percent(d.latest.probability)}`;
  const { faulty, scored } = d.latest.recent;
  $("recent").textContent = scored === 0 ? "none scored yet" : `${faulty} of the last ${scored} scored faulty`;
  $("episode").textContent = episodeText(record);
  $("model").textContent = modelText(record, d.latest.model);
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

/** "alarm: fan-0123456789abcdef", then " · latest reading: fan-…" once another model scores (a promotion). */
function modelText(record, latest) {
  const moved = record?.model ?? null;
  const parts = [];
  if (moved) parts.push(`${record.state}: ${moved}`);
  if (latest && latest !== moved) parts.push(`latest reading: ${latest}`);
  return parts.length === 0 ? "–" : parts.join(" · ");
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

// --- keeping up ---

/**
 * The newest transition the page received about the fan (a comment changes no record), and the
 * record's fields an action or a transition changes: the timeline is read again when this does.
 */
function changeOf(d) {
  const r = d.record;
  return JSON.stringify([
    d.lastTransition?.id ?? null,
    r && [r.alarmId, r.state, r.severity, r.acknowledged, r.assignedTo, r.finding?.at, r.shelvedUntil, r.maintenance],
  ]);
}

async function refresh() {
  try {
    await loadDetail();
    const change = changeOf(detail);
    if (lastChange !== undefined && change !== lastChange) void history();
    lastChange = change;
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

/** One read of the history at a time: a change during a read reads it once more after. */
let reading = null;
let again = false;
function history() {
  if (reading !== null) {
    again = true;
    return reading;
  }
  reading = (async () => {
    do {
      again = false;
      try {
        lastEpisode = await loadHistory(deviceID);
      } catch (error) {
        $("timeline-message").textContent = `History unavailable: ${error.message}`;
      }
    } while (again);
    reading = null;
  })();
  return reading;
}

$("older").addEventListener("click", async () => {
  $("older").disabled = true;
  try {
    await loadOlder(deviceID);
  } catch (error) {
    $("timeline-message").textContent = `Older episodes unavailable: ${error.message}`;
  } finally {
    $("older").disabled = false;
  }
});

await Promise.all([
  setUpActions(deviceID, {
    alarmId: () => detail?.record?.alarmId ?? lastEpisode?.alarmId ?? null,
    afterAct: () => Promise.all([refresh(), history()]),
  }),
  refresh(),
  history(),
]);
setInterval(refresh, 2_000);
setInterval(() => void history(), HISTORY_FALLBACK_MS);
