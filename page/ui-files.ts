import { readFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { sendErrorCode } from "../lib/infra/http/error-answer.js";

/** The page's files are plain HTML, CSS and browser JavaScript: nothing to build at run time. */
const UI_DIR = fileURLToPath(new URL("../../page/ui/", import.meta.url));
// Resolved as Node resolves the package, so it works from dist/, from the source and in an image.
const resolve = createRequire(import.meta.url).resolve;

/** Every file the page serves, by its path: the pages, their scripts and style, the favicon, uPlot. */
const FILES: Record<string, string> = {
  "/ui/": `${UI_DIR}index.html`,
  "/ui/app.js": `${UI_DIR}app.js`,
  "/ui/style.css": `${UI_DIR}style.css`,
  "/favicon.ico": `${UI_DIR}favicon.svg`,
  "/ui/favicon.svg": `${UI_DIR}favicon.svg`,
  "/ui/fan.js": `${UI_DIR}fan.js`,
  "/ui/fan-charts.js": `${UI_DIR}fan-charts.js`,
  "/ui/fan-format.js": `${UI_DIR}fan-format.js`,
  "/ui/fan-timeline.js": `${UI_DIR}fan-timeline.js`,
  "/ui/fan-actions.js": `${UI_DIR}fan-actions.js`,
  "/ui/health-action.js": `${UI_DIR}health-action.js`,
  "/ui/fans-panel.js": `${UI_DIR}fans-panel.js`,
  "/ui/models-panel.js": `${UI_DIR}models-panel.js`,
  "/ui/vendor/uPlot.esm.js": resolve("uplot/dist/uPlot.esm.js"),
  "/ui/vendor/uPlot.min.css": resolve("uplot/dist/uPlot.min.css"),
};
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};

/** The fan view's own address (`/ui/fans/<deviceID>`): fan.html, which reads the id from it. */
const FAN_PATH = /^\/ui\/fans\/[^/]+$/;

/**
 * What the page's documents may load: only its own files (no inline script, no other site), no
 * plugins, no <base> to redirect its relative links, forms only to itself, and no framing by
 * another site (which could lure a signed-in engineer into clicking an action). uPlot sets its
 * styles through the DOM, which style-src does not govern.
 */
export const PAGE_CSP =
  "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The file at this path (absolute), or undefined when the page has none there. */
export function uiFile(path: string): string | undefined {
  return FILES[path] ?? (FAN_PATH.test(path) ? `${UI_DIR}fan.html` : undefined);
}

/** Serves one of the page's files, with the headers every one of them carries. */
export function serveUiFile(file: string, res: ServerResponse): void {
  readFile(file).then(
    (body) =>
      res
        .writeHead(200, {
          "content-type": TYPES[file.split(".").pop() ?? ""] ?? "application/octet-stream",
          "cache-control": "no-cache",
          "x-content-type-options": "nosniff",
          "x-frame-options": "DENY",
          "content-security-policy": PAGE_CSP,
          "referrer-policy": "same-origin",
        })
        .end(body),
    () => sendErrorCode(res, "FANWATCH_NOT_BUILT", `${file} is missing`),
  );
}
