// The Models panel, for everyone signed in (it only reads): the site's active, previous and shadow
// models, each score replica's status (gone when it stopped reporting), the models replicas refused
// and why, and the shadow compared with the active model over every predict replica. Read from
// /ui/api/models every few seconds; everything is set as text.

const $ = (id) => document.getElementById(id);
/** How often the panel reads the registry again: replicas report every 10 s, predict every 5 s. */
const EVERY_MS = 5_000;
const percent = (v) => (v === null ? "n/a" : `${(v * 100).toFixed(2)}%`);
const accuracy = (v) => (v === null ? "n/a" : v.toFixed(4));
const ratio = (v) => (v === null ? "not measured" : `${v.toFixed(2)}×`);
const when = (at) => new Date(at).toLocaleString();

let started = false;

export function startModelsPanel() {
  if (started) return;
  started = true;
  void refresh();
  setInterval(() => void refresh(), EVERY_MS);
}

async function refresh() {
  try {
    const res = await fetch("/ui/api/models");
    const answer = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(answer.error ?? `the page answered ${res.status}`);
    if (answer.registry === "none") {
      say(`No model registry: ${answer.message}.`, false);
      $("models-body").hidden = true;
      return;
    }
    render(answer);
    say(answer.active === null ? `Site ${answer.site} has no model in the registry yet.` : "", false);
  } catch (error) {
    // The last models read stay shown: the message says they may be out of date.
    say(`The model registry cannot be read: ${error.message}`, true);
  }
}

function render(panel) {
  $("models-site").textContent = `(site ${panel.site})`;
  $("models-body").hidden = false;
  $("models-roles").replaceChildren(
    role("active", panel.active),
    role("previous", panel.previous),
    role("shadow", panel.shadow),
  );
  const p = panel.pointer;
  $("models-pointer").textContent =
    p === null
      ? ""
      : `Pointer revision ${p.revision}: ${p.reason} by ${p.by || "?"} at ${when(p.at)}${p.forced ? " (forced past failing gates)" : ""}${p.note ? ` · ${p.note}` : ""}`;
  $("no-replicas").hidden = panel.replicas.length > 0;
  $("models-replicas").replaceChildren(...panel.replicas.map((r) => replica(r, panel.goneAfterMs)));
  $("no-refusals").hidden = panel.refusals.length > 0;
  $("models-refusals").replaceChildren(...panel.refusals.map(refusal));
  $("models-comparison").replaceChildren(...comparison(panel.comparison, panel.shadow));
}

function item(text, data = {}) {
  const li = document.createElement("li");
  li.className = "fan-row";
  li.textContent = text;
  for (const [key, value] of Object.entries(data)) li.dataset[key] = String(value);
  return li;
}

function role(name, model) {
  if (model === null) return item(`${name}: none`, { role: name });
  const parts = [
    `${name}: ${model.id}`,
    model.pushed === null ? null : `pushed ${when(model.pushed)}${model.by ? ` by ${model.by}` : ""}`,
    `parent ${model.parent ?? "none"}`,
    `golden accuracy ${accuracy(model.goldenAccuracy)}${model.goldenLabelled > 0 ? ` on ${model.goldenLabelled} labelled` : ""}`,
    `held-out ${accuracy(model.heldOutAccuracy)}`,
    model.refused === null ? null : `refused: ${model.refused}`,
  ];
  return item(parts.filter((p) => p !== null).join(" · "), { role: name, model: model.id });
}

function replica(r, goneAfterMs) {
  const serving = `${r.active}${r.shadow === null ? "" : `, shadow ${r.shadow}`}`;
  const seen = `last seen ${when(r.at)}`;
  const gone = r.gone ? ` · gone (not seen for ${Math.round(goneAfterMs / 1000)} s)` : "";
  return item(`${r.replica}: serving ${serving} · revision ${r.revision} · ${seen}${gone}`, {
    replica: r.replica,
    gone: r.gone,
  });
}

function refusal(r) {
  return item(`${r.replica} refused ${r.id} at ${when(r.at)}: ${r.error}`, { replica: r.replica, model: r.id });
}

function comparison(t, shadow) {
  if (shadow === null || t === null) return [item("No shadow: fanwatch model shadow <id> sets one.")];
  if (t.replicas === 0)
    return [item(`No comparison yet: predict writes one every few seconds while ${t.shadow} scores readings.`)];
  const fans = (ids) => (ids.length === 0 ? "none" : ids.join(", "));
  const lines = [
    `${t.readings.toLocaleString("en")} readings since ${when(t.since)} over ${t.replicas} predict replica${t.replicas === 1 ? "" : "s"}`,
    `agreement ${percent(t.agreement)}`,
    `alarms: active ${t.alarms.active}, shadow ${t.alarms.shadow}`,
    `fans the shadow would open: ${fans(t.fans.opened)}`,
    `fans the shadow would close: ${fans(t.fans.closed)}`,
    `cost: CPU ${ratio(t.cost.cpuRatio)}, latency ${ratio(t.cost.latencyRatio)} of the active model alone`,
  ];
  if (t.stale > 0)
    lines.push(`${t.stale} older record${t.stale === 1 ? "" : "s"} against another active model not counted`);
  return lines.map((line, i) =>
    item(line, { line: ["readings", "agreement", "alarms", "opened", "closed", "cost", "stale"][i] }),
  );
}

function say(text, failed) {
  const message = $("models-message");
  message.textContent = text;
  message.hidden = text === "";
  message.classList.toggle("failed", failed);
}
