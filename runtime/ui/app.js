// The live fleet page: one tile per fan, its state and fault probability, small charts of the four
// sensors, and feeds of anomalies and dead letters. Fed by server-sent events from /ui/events.
const SENSORS = [
  ["rotation", "rpm"],
  ["temperature", "°C"],
  ["vibration", ""],
  ["sound", "dB"],
];
const SVG = "http://www.w3.org/2000/svg";
const tiles = new Map();
const $ = (id) => document.getElementById(id);
const number = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
const time = (at) => new Date(at).toLocaleTimeString();

function tileFor(fan) {
  let tile = tiles.get(fan.deviceID);
  if (tile) return tile;
  const node = $("tile").content.firstElementChild.cloneNode(true);
  node.dataset.fan = fan.deviceID;
  node.querySelector("h3").textContent = `Fan ${fan.deviceID}`;
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
  line.setAttribute("points", points.map((v, i) => `${(i * step).toFixed(1)},${(19 - ((v - min) / span) * 18).toFixed(1)}`).join(" "));
}

function render(snapshot) {
  $("fans").textContent = number.format(snapshot.totals.fans);
  $("in-fault").textContent = number.format(snapshot.totals.fansInFault);
  $("rate").textContent = number.format(snapshot.rates.readingsPerSecond);
  $("predictions").textContent = number.format(snapshot.totals.predictions);
  $("dead-letters").textContent = number.format(snapshot.totals.deadLetters);
  const container = $("tiles");
  snapshot.fans.forEach((fan, index) => {
    const { node, lines } = tileFor(fan);
    node.dataset.state = fan.state;
    node.querySelector(".state").textContent = fan.state;
    node.querySelector(".probability").textContent =
      fan.probability === null ? "no prediction yet" : `fault probability ${(fan.probability * 100).toFixed(1)}% · ${Math.round(fan.faultShare * 100)}% of recent readings faulty`;
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
  $("feed").replaceChildren(...snapshot.feed.map((a) => item(`${time(a.at)} · Fan ${a.deviceID} · ${(a.probability * 100).toFixed(1)}%`)));
  $("dead-letter-feed").replaceChildren(...snapshot.deadLetters.map((d) => item(`${time(d.at)} · ${d.error}`)));
}

function item(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

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
