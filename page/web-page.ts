import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import type { FleetView } from "./fleet-view.js";
import { ServiceBase } from "../lib/infra/service.js";
import { sendErrorCode } from "../lib/infra/http/error-answer.js";
import { FanDetail } from "./fan-detail.js";
import { serveUiFile } from "./ui-files.js";

/** The page's files are plain HTML, CSS and browser JavaScript: nothing to build at run time. */
const UI_DIR = fileURLToPath(new URL("../../page/ui/", import.meta.url));
const FILES: Record<string, string> = {
  "/ui/": "index.html",
  "/ui/app.js": "app.js",
  "/ui/style.css": "style.css",
};
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

export interface WebPageOptions {
  intervalMs?: number;
  /** Open event streams at most; one more gets 503. */
  maxStreams?: number;
  /** A stream whose client has not taken its frames for this many frames in a row is closed. */
  maxMissedFrames?: number;
}

interface Stream {
  res: ServerResponse;
  /** True while the last frame waits in the socket's buffer. */
  waiting: boolean;
  /** Frames skipped in a row while waiting. */
  missed: number;
}

/**
 * Serves the live fleet page at /ui/ and its server-sent events at /ui/events: a snapshot of the
 * fleet every second to every open page, built only when a page is open. At most 16 streams (a
 * control room and a few tablets; every one costs a snapshot's JSON a second); a client that does
 * not take its frames gets no new ones until its socket drains, so the server holds at most one
 * frame per client, and is closed after missing 30 frames in a row (30 s behind).
 */
export class WebPage extends ServiceBase {
  readonly name = "page";
  readonly #fleet: FleetView;
  readonly #fanDetail: FanDetail;
  readonly #maxStreams: number;
  readonly #maxMissed: number;
  readonly #intervalMs: number;
  readonly #streams = new Set<Stream>();
  #timer: NodeJS.Timeout | undefined;

  constructor(fleet: FleetView, options: WebPageOptions = {}) {
    super();
    this.#fleet = fleet;
    this.#fanDetail = new FanDetail(fleet);
    this.#maxStreams = options.maxStreams ?? 16;
    this.#maxMissed = options.maxMissedFrames ?? 30;
    this.#intervalMs = options.intervalMs ?? 1_000;
  }

  protected async onStart(): Promise<void> {
    this.#timer = setInterval(this.tick, this.#intervalMs);
    this.#timer.unref();
  }

  /** Ends every stream and refuses new ones: a page left open must not hold the shutdown up. */
  protected async onClose(): Promise<void> {
    clearInterval(this.#timer);
    // Destroyed rather than ended: a client that does not read would keep an ended stream open.
    for (const { res } of this.#streams) res.destroy();
    this.#streams.clear();
  }

  /** Sends the next frame to every stream that has taken the last one: the timer does, every intervalMs. */
  readonly tick = (): void => {
    let frame: string | undefined;
    for (const stream of this.#streams) {
      if (!stream.waiting) send(stream, (frame ??= `data: ${JSON.stringify(this.#fleet.snapshot())}\n\n`));
      else if (++stream.missed > this.#maxMissed) stream.res.destroy();
    }
  };

  /** Serves the page's paths; false for any other. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = new URL(req.url ?? "/", "http://page");
    const path = url.pathname;
    if (path === "/" || path === "/ui") {
      // The query stays: a notification's link to a fan is /?fan=<id>.
      res.writeHead(302, { location: `/ui/${url.search}` }).end();
      return true;
    }
    if (path === "/ui/events") {
      this.#openStream(res);
      return true;
    }
    if (this.#fleet.notifications.handle(req, res)) return true;
    if (this.#fanDetail.handle(req, res) || serveUiFile(path, res)) return true;
    const file = FILES[path];
    if (file === undefined) return false;
    serveFile(file, res);
    return true;
  };

  #openStream(res: ServerResponse): void {
    if (this.stopping || this.#streams.size >= this.#maxStreams) {
      const why = this.stopping
        ? "fanwatch is stopping"
        : `the page is open in ${this.#maxStreams} places already, the most it serves; close one`;
      sendErrorCode(res, "FANWATCH_PAGE_BUSY", why, { "retry-after": "10" });
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    const stream: Stream = { res, waiting: false, missed: 0 };
    this.#streams.add(stream);
    res.on("close", () => this.#streams.delete(stream));
    send(stream, `retry: 2000\ndata: ${JSON.stringify(this.#fleet.snapshot())}\n\n`);
  }

  /** Open event streams, those waiting for their client to take a frame, and the bytes they hold. */
  readonly stats = (): { streams: number; waiting: number; bufferedBytes: number } => {
    let waiting = 0;
    let bufferedBytes = 0;
    for (const stream of this.#streams) {
      if (stream.waiting) waiting++;
      bufferedBytes += stream.res.writableLength;
    }
    return { streams: this.#streams.size, waiting, bufferedBytes };
  };
}

/** Writes a frame; a stream whose socket is still full is skipped until it drains. */
function send(stream: Stream, frame: string): void {
  if (stream.res.write(frame)) return;
  stream.waiting = true;
  stream.res.once("drain", () => {
    stream.waiting = false;
    stream.missed = 0;
  });
}

function serveFile(file: string, res: ServerResponse): void {
  readFile(`${UI_DIR}${file}`).then(
    (body) =>
      res
        .writeHead(200, {
          "content-type": TYPES[file.split(".").pop() ?? ""] ?? "application/octet-stream",
          "cache-control": "no-cache",
          "x-content-type-options": "nosniff",
        })
        .end(body),
    () => sendErrorCode(res, "FANWATCH_NOT_BUILT", `${file} is missing from ${UI_DIR}`),
  );
}
