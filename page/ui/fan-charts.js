// The fan view's charts, drawn with uPlot: one per sensor with its healthy range shaded, and the
// fault probability of each reading with the model's threshold dashed. Times arrive in ms; uPlot
// takes seconds.
import uPlot from "/ui/vendor/uPlot.esm.js";

const LINE = "#3b6fb6";
const BAND = "rgba(46, 125, 50, 0.14)";
const THRESHOLD = "#c62828";

/** Fills the plot between two values of y, behind the series (the drawClear hook runs before them). */
function shade(u, low, high, color) {
  const top = Math.max(u.bbox.top, u.valToPos(high, "y", true));
  const bottom = Math.min(u.bbox.top + u.bbox.height, u.valToPos(low, "y", true));
  if (bottom <= top) return;
  u.ctx.save();
  u.ctx.fillStyle = color;
  u.ctx.fillRect(u.bbox.left, top, u.bbox.width, bottom - top);
  u.ctx.restore();
}

function rule(u, value, color) {
  const y = Math.round(u.valToPos(value, "y", true));
  u.ctx.save();
  u.ctx.strokeStyle = color;
  u.ctx.setLineDash([6, 4]);
  u.ctx.lineWidth = 1.5;
  u.ctx.beginPath();
  u.ctx.moveTo(u.bbox.left, y);
  u.ctx.lineTo(u.bbox.left + u.bbox.width, y);
  u.ctx.stroke();
  u.ctx.restore();
}

/** The time axis: 24-hour clock times, seconds only where ticks are less than a minute apart. */
const TIME_AXIS = {
  space: 60,
  incrs: [15, 30, 60, 120, 300, 600, 900, 1800, 3600],
  values: (u, ticks) => {
    const seconds = ticks.length > 1 && ticks[1] - ticks[0] < 60;
    const format = { hour: "2-digit", minute: "2-digit", hourCycle: "h23", ...(seconds ? { second: "2-digit" } : {}) };
    return ticks.map((t) => new Date(t * 1000).toLocaleTimeString([], format));
  },
};

function size(container) {
  return { width: Math.max(200, container.clientWidth), height: 150 };
}

/** Redraws a chart at its container's width whenever that changes. */
function follow(chart, container) {
  new ResizeObserver(() => chart.setSize(size(container))).observe(container);
}

/** A sensor's chart: its readings, the healthy range shaded, the y axis in its unit and wide enough to show the range. */
export function sensorChart(container, sensor, healthy) {
  const unit = healthy.unit ? ` (${healthy.unit})` : "";
  const opts = {
    ...size(container),
    title: `${sensor}${unit}`,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: {
      y: {
        range: (u, min, max) => {
          const low = Math.min(min ?? healthy.min, healthy.min);
          const high = Math.max(max ?? healthy.max, healthy.max);
          const pad = (high - low) * 0.1 || 1;
          return [low - pad, high + pad];
        },
      },
    },
    axes: [TIME_AXIS, { label: `${sensor}${unit}`, size: 55 }],
    series: [{}, { label: sensor, stroke: LINE, width: 1.5 }],
    hooks: { drawClear: [(u) => shade(u, healthy.min, healthy.max, BAND)] },
  };
  const chart = new uPlot(opts, [[], []], container);
  follow(chart, container);
  return { update: (at, values) => chart.setData([at.map((t) => t / 1000), values]) };
}

/** The fault probability of each reading, 0 to 100%, with the model's threshold (null: not known) dashed. */
export function probabilityChart(container) {
  let threshold = null;
  const opts = {
    ...size(container),
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { y: { range: [0, 1] } },
    axes: [
      TIME_AXIS,
      { label: "fault probability", size: 55, values: (u, ticks) => ticks.map((t) => `${Math.round(t * 100)}%`) },
    ],
    series: [{}, { label: "fault probability", stroke: LINE, width: 1.5, points: { show: false } }],
    hooks: { draw: [(u) => threshold !== null && rule(u, threshold, THRESHOLD)] },
  };
  const chart = new uPlot(opts, [[], []], container);
  follow(chart, container);
  return {
    update(at, values, modelThreshold) {
      threshold = modelThreshold;
      chart.setData([at.map((t) => t / 1000), values]);
    },
  };
}
