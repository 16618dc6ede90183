import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import type { FleetView } from "./fleet-view.js";

/** The page's files are plain HTML, CSS and browser JavaScript: nothing to build at run time. */
const UI_DIR = fileURLToPath(new URL("../../runtime/ui/", import.meta.url));
const FILES: Record<string, string> = {
  "/ui/": "index.html",
  "/ui/app.js": "app.js",
  "/ui/style.css": "style.css",
};
const TYPES: Record<string, string> = { html: "text/html; charset=utf-8", js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8" };

/**
 * Serves the live fleet page at /ui/ and its server-sent events at /ui/events: a snapshot of the
 * fleet every second to every open page. Returns false for paths that are not the page's.
 */
export function createWebPage(fleet: FleetView, intervalMs = 1_000): { handle: (req: IncomingMessage, res: ServerResponse) => boolean; close: () => void } {
  const clients = new Set<ServerResponse>();
  const timer = setInterval(() => {
    if (clients.size === 0) return;
    const frame = `data: ${JSON.stringify(fleet.snapshot())}\n\n`;
    for (const res of clients) res.write(frame);
  }, intervalMs);
  timer.unref();

  function handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = new URL(req.url ?? "/", "http://page").pathname;
    if (path === "/" || path === "/ui") {
      res.writeHead(302, { location: "/ui/" }).end();
      return true;
    }
    if (path === "/ui/events") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
      res.write(`retry: 2000\ndata: ${JSON.stringify(fleet.snapshot())}\n\n`);
      clients.add(res);
      req.on("close", () => clients.delete(res));
      return true;
    }
    const file = FILES[path];
    if (file === undefined) return false;
    readFile(`${UI_DIR}${file}`).then(
      (body) => res.writeHead(200, { "content-type": TYPES[file.split(".").pop() ?? ""] ?? "application/octet-stream", "cache-control": "no-cache", "x-content-type-options": "nosniff" }).end(body),
      () => res.writeHead(500, { "content-type": "text/plain" }).end(`${file} is missing from ${UI_DIR}`),
    );
    return true;
  }

  return {
    handle,
    close() {
      clearInterval(timer);
      for (const res of clients) res.end();
      clients.clear();
    },
  };
}
