import { readFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { sendErrorCode } from "../lib/infra/http/error-answer.js";

const UI_DIR = fileURLToPath(new URL("../../page/ui/", import.meta.url));
// Resolved as Node resolves the package, so it works from dist/, from the source and in an image.
const resolve = createRequire(import.meta.url).resolve;

/** The fan view's scripts, the favicon and uPlot (the charts' library, served from node_modules). */
const FILES: Record<string, string> = {
  "/favicon.ico": `${UI_DIR}favicon.svg`,
  "/ui/favicon.svg": `${UI_DIR}favicon.svg`,
  "/ui/fan.js": `${UI_DIR}fan.js`,
  "/ui/fan-charts.js": `${UI_DIR}fan-charts.js`,
  "/ui/fan-format.js": `${UI_DIR}fan-format.js`,
  "/ui/fan-timeline.js": `${UI_DIR}fan-timeline.js`,
  "/ui/fan-actions.js": `${UI_DIR}fan-actions.js`,
  "/ui/vendor/uPlot.esm.js": resolve("uplot/dist/uPlot.esm.js"),
  "/ui/vendor/uPlot.min.css": resolve("uplot/dist/uPlot.min.css"),
};
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};

/** Serves the fan view's scripts, uPlot and the favicon; false for any other path (web-page.ts serves the pages). */
export function serveUiFile(path: string, res: ServerResponse): boolean {
  const file = FILES[path];
  if (file === undefined) return false;
  readFile(file).then(
    (body) =>
      res
        .writeHead(200, {
          "content-type": TYPES[file.split(".").pop() ?? ""] ?? "application/octet-stream",
          "cache-control": "no-cache",
          "x-content-type-options": "nosniff",
        })
        .end(body),
    () => sendErrorCode(res, "FANWATCH_NOT_BUILT", `${file} is missing`),
  );
  return true;
}
