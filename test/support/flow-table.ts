/**
 * The flows table of docs/deploy.md ("Who can reach what"), the one list of who may reach what: a
 * Markdown table `| from | to | port | why | policies |`, where a from or to cell lists names
 * separated by commas and a port cell lists `port/PROTOCOL` (or `any`). Every row stands for each
 * of its froms to each of its tos on each of its ports.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./paths.js";

const SECTION = "### Who can reach what";
const HEADER = /^\|\s*from\s*\|\s*to\s*\|\s*port\s*\|\s*why\s*\|\s*policies\s*\|$/;

export interface FlowRow {
  from: string[];
  to: string[];
  ports: string[];
  line: number;
}

const list = (cell: string) =>
  cell
    .replace(/`/g, "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");

/** The rows of the flows table, as written. */
export function flowRows(file = join(REPO_ROOT, "docs/deploy.md")): FlowRow[] {
  const lines = readFileSync(file, "utf8").split("\n");
  const start = lines.indexOf(SECTION);
  if (start < 0) throw new Error(`${file} has no section "${SECTION}"`);
  const header = lines.findIndex((l, i) => i > start && HEADER.test(l.trim()));
  if (header < 0) throw new Error(`"${SECTION}" has no table | from | to | port | why | policies |`);
  const rows: FlowRow[] = [];
  for (let i = header + 2; i < lines.length && (lines[i] ?? "").startsWith("|"); i++) {
    const cells = (lines[i] ?? "").split("|").slice(1, -1);
    if (cells.length !== 5) throw new Error(`docs/deploy.md:${i + 1}: ${cells.length} cells, not 5`);
    const [from = "", to = "", ports = ""] = cells;
    rows.push({ from: list(from), to: list(to), ports: list(ports), line: i + 1 });
  }
  return rows;
}

/**
 * The flows the table allows, as `from → to port/PROTOCOL` (or `any`), with `every pod` in a from
 * cell standing for each of `pods`.
 */
export function tableFlows(rows: FlowRow[], pods: string[]): Set<string> {
  const flows = new Set<string>();
  for (const row of rows)
    for (const from of row.from.flatMap((f) => (f === "every pod" ? pods : [f])))
      for (const to of row.to)
        for (const port of row.ports) {
          if (port !== "any" && !/^\d+\/(TCP|UDP)$/.test(port))
            throw new Error(`docs/deploy.md:${row.line}: port "${port}" is not port/TCP, port/UDP or any`);
          flows.add(`${from} → ${to} ${port}`);
        }
  return flows;
}
