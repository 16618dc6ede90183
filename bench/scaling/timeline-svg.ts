/**
 * A benchmark timeline as an SVG picture docs/benchmarks.md can show: one panel per run, the
 * offered and achieved readings/s and the p99 latency over time, and beneath them each function's
 * replicas. Plain SVG text: nothing to install, and the file diffs as text.
 */

export interface TimelinePoint {
  /** Seconds since the run started. */
  t: number;
  offered: number;
  achieved: number;
  p99Ms: number;
  replicas: Record<string, number>;
}

export interface TimelinePanel {
  title: string;
  points: TimelinePoint[];
  /** Moments worth a mark (a replica killed), in seconds since the run started. */
  marks: Array<{ t: number; label: string }>;
}

const WIDTH = 900;
const RATE_HEIGHT = 220;
const REPLICA_HEIGHT = 90;
const GAP = 60;
const LEFT = 70;
const RIGHT = 70;
const COLORS = { offered: "#999999", achieved: "#1f77b4", p99: "#d62728" };
const REPLICA_COLORS = ["#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

export function timelineSvg(panels: TimelinePanel[]): string {
  const panelHeight = RATE_HEIGHT + REPLICA_HEIGHT + GAP + 30;
  const height = panels.length * panelHeight + 40;
  const maxT = Math.max(1, ...panels.flatMap((p) => p.points.map((q) => q.t)));
  const maxRate = niceCeiling(Math.max(1, ...panels.flatMap((p) => p.points.flatMap((q) => [q.offered, q.achieved]))));
  const maxP99 = niceCeiling(
    Math.max(1, ...panels.flatMap((p) => p.points.map((q) => (Number.isFinite(q.p99Ms) ? q.p99Ms : 0)))),
  );
  const maxReplicas = Math.max(1, ...panels.flatMap((p) => p.points.flatMap((q) => Object.values(q.replicas))));
  const x = (t: number) => LEFT + (t / maxT) * (WIDTH - LEFT - RIGHT);
  const parts: string[] = [];
  panels.forEach((panel, i) => {
    const top = 20 + i * panelHeight;
    const rateY = (v: number) => top + 30 + RATE_HEIGHT - (v / maxRate) * RATE_HEIGHT;
    const p99Y = (v: number) => top + 30 + RATE_HEIGHT - (Math.min(v, maxP99) / maxP99) * RATE_HEIGHT;
    const replicaTop = top + 30 + RATE_HEIGHT + GAP;
    const replicaY = (v: number) => replicaTop + REPLICA_HEIGHT - (v / maxReplicas) * REPLICA_HEIGHT;
    parts.push(`<text x="${LEFT}" y="${top + 16}" font-weight="bold">${escape(panel.title)}</text>`);
    parts.push(axis(LEFT, top + 30, WIDTH - RIGHT, top + 30 + RATE_HEIGHT));
    parts.push(
      `<text x="${LEFT - 8}" y="${top + 36}" text-anchor="end">${maxRate.toLocaleString("en")}</text><text x="${LEFT - 8}" y="${top + 30 + RATE_HEIGHT}" text-anchor="end">0</text>`,
    );
    parts.push(`<text x="${WIDTH - RIGHT + 8}" y="${top + 36}" fill="${COLORS.p99}">${maxP99} ms</text>`);
    parts.push(
      line(
        panel.points.map((q) => [x(q.t), rateY(q.offered)]),
        COLORS.offered,
        "4 3",
      ),
    );
    parts.push(
      line(
        panel.points.map((q) => [x(q.t), rateY(q.achieved)]),
        COLORS.achieved,
      ),
    );
    parts.push(
      line(
        panel.points.filter((q) => Number.isFinite(q.p99Ms)).map((q) => [x(q.t), p99Y(q.p99Ms)]),
        COLORS.p99,
      ),
    );
    parts.push(axis(LEFT, replicaTop, WIDTH - RIGHT, replicaTop + REPLICA_HEIGHT));
    parts.push(
      `<text x="${LEFT - 8}" y="${replicaTop + 6}" text-anchor="end">${maxReplicas}</text><text x="${LEFT - 8}" y="${replicaTop + REPLICA_HEIGHT}" text-anchor="end">0</text>`,
    );
    const names = [...new Set(panel.points.flatMap((q) => Object.keys(q.replicas)))].sort();
    names.forEach((name, k) => {
      const color = REPLICA_COLORS[k % REPLICA_COLORS.length] as string;
      parts.push(
        step(
          panel.points.map((q) => [x(q.t), replicaY(q.replicas[name] ?? 0)]),
          color,
        ),
      );
      parts.push(
        `<text x="${WIDTH - RIGHT + 8}" y="${replicaTop + 14 + k * 16}" fill="${color}">${escape(name)}</text>`,
      );
    });
    parts.push(`<text x="${LEFT}" y="${replicaTop - 6}">replicas</text>`);
    for (const mark of panel.marks) {
      parts.push(
        `<line x1="${x(mark.t)}" y1="${top + 30}" x2="${x(mark.t)}" y2="${replicaTop + REPLICA_HEIGHT}" stroke="#000" stroke-dasharray="2 2"/>`,
      );
      parts.push(`<text x="${x(mark.t) + 4}" y="${top + 44}">${escape(mark.label)}</text>`);
    }
    parts.push(
      `<text x="${WIDTH - RIGHT}" y="${replicaTop + REPLICA_HEIGHT + 18}" text-anchor="end">${Math.round(maxT)} s</text>`,
    );
  });
  const legend = `<text x="${LEFT + 260}" y="16"><tspan fill="${COLORS.offered}">offered readings/s</tspan> · <tspan fill="${COLORS.achieved}">achieved readings/s</tspan> · <tspan fill="${COLORS.p99}">p99 publish → prediction (right axis)</tspan></text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="#fff"/>\n${legend}\n${parts.join("\n")}\n</svg>\n`;
}

function axis(x1: number, y1: number, x2: number, y2: number): string {
  return `<path d="M${x1} ${y1} V${y2} H${x2}" fill="none" stroke="#444"/>`;
}

function line(points: Array<[number, number]>, color: string, dash?: string): string {
  if (points.length === 0) return "";
  const d = points.map(([px, py], i) => `${i === 0 ? "M" : "L"}${px.toFixed(1)} ${py.toFixed(1)}`).join(" ");
  return `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"${dash === undefined ? "" : ` stroke-dasharray="${dash}"`}/>`;
}

/** A step line: replicas hold their value until the next sample. */
function step(points: Array<[number, number]>, color: string): string {
  const stepped: Array<[number, number]> = [];
  points.forEach(([px, py], i) => {
    const previous = points[i - 1];
    if (previous !== undefined) stepped.push([px, previous[1]]);
    stepped.push([px, py]);
  });
  return line(stepped, color);
}

function niceCeiling(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / magnitude) * magnitude;
}

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
