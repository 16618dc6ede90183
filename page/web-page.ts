import type { IncomingMessage, ServerResponse } from "node:http";
import type { FleetView } from "./fleet-view.js";
import { ServiceBase } from "../lib/infra/service.js";
import { sendErrorCode } from "../lib/infra/http/error-answer.js";
import type { Access } from "./access/access.js";
import { OffAccess } from "./access/off.js";
import { foreignOrigin } from "./access/origin.js";
import type { PageApi } from "./page-api.js";
import { PAGE_RECEIVER_PATH } from "./notifications.js";
import { FanDetail } from "./fan-detail.js";
import { serveUiFile, uiFile } from "./ui-files.js";

export interface WebPageOptions {
  intervalMs?: number;
  /** Open event streams at most, all users together; one more gets 503. @default 16 with sign-in off, 64 with it on */
  maxStreams?: number;
  /** Open event streams of one signed-in user at most; one more gets 503. @default 4 */
  maxStreamsPerUser?: number;
  /** Who may see and act: sign-in (docs/page.md). @default sign-in off (OffAccess) */
  access?: Access;
  /**
   * Who may post Alertmanager's notifications (PAGE_RECEIVER_PATH): every peer by default, as under
   * `fanwatch start`; the page service admits only PAGE_ALERTMANAGER_FROM, since a forged
   * notification would change what the operators see.
   */
  receiverAllowed?: (req: IncomingMessage) => boolean;
  /** The page's API (/ui/api/*), served after the page's own paths; closed with the page. */
  api?: PageApi;
  /** A stream whose client has not taken its frames for this many frames in a row is closed. */
  maxMissedFrames?: number;
}

interface Stream {
  res: ServerResponse;
  /** True while the last frame waits in the socket's buffer. */
  waiting: boolean;
  /** Frames skipped in a row while waiting. */
  missed: number;
  /** Whose stream it is (Visitor.key): the per-user limit counts by it. */
  key: string;
  /** The request that opened it: its session is checked again every RECHECK_FRAMES frames. */
  req: IncomingMessage;
  /** Frames sent since its session was last checked. */
  sinceCheck: number;
}

/**
 * How often (in frames, about seconds) a stream's session is checked again: a user signed out,
 * expired, removed from the users file or no longer named by the proxy loses the live view within
 * half a minute (the browser reconnects and is asked to sign in). An open page keeps its session
 * alive meanwhile, as a control room's screen should, up to the session's maximum age.
 */
const RECHECK_FRAMES = 30;

/**
 * Serves the live fleet page at /ui/ and its server-sent events at /ui/events: a snapshot of the
 * fleet every second to every open page, built only when a page is open. At most 16 streams (a
 * control room and a few tablets; every one costs a snapshot's JSON a second); a client that does
 * not take its frames gets no new ones until its socket drains, so the server holds at most one
 * frame per client, and is closed after missing 30 frames in a row (30 s behind).
 *
 * With sign-in on, only signed-in users get a stream (401 otherwise), at most 4 each: so nobody
 * who can merely reach the page, nor one user's forgotten tabs, can take every place and lock
 * the operators out. With sign-in off (loopback only) the total limit alone holds.
 */
export class WebPage extends ServiceBase {
  readonly name = "page";
  readonly #fleet: FleetView;
  readonly #fanDetail: FanDetail;
  readonly #maxStreams: number;
  readonly #maxPerUser: number;
  readonly #access: Access;
  readonly #api: PageApi | undefined;
  readonly #receiverAllowed: (req: IncomingMessage) => boolean;
  readonly #maxMissed: number;
  readonly #intervalMs: number;
  readonly #streams = new Set<Stream>();
  /** Open streams by Visitor.key. */
  readonly #perUser = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(fleet: FleetView, options: WebPageOptions = {}) {
    super();
    this.#fleet = fleet;
    this.#access = options.access ?? new OffAccess();
    this.#api = options.api;
    this.#receiverAllowed = options.receiverAllowed ?? (() => true);
    this.#fanDetail = new FanDetail(fleet, (req) => this.#access.visitor(req) !== undefined);
    this.#maxStreams = options.maxStreams ?? (this.#access.mode === "off" ? 16 : 64);
    this.#maxPerUser = options.maxStreamsPerUser ?? 4;
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
    this.#perUser.clear();
    this.#api?.close();
  }

  /** How people sign in to this page. */
  get access(): Access {
    return this.#access;
  }

  /** Sends the next frame to every stream that has taken the last one: the timer does, every intervalMs. */
  readonly tick = (): void => {
    let frame: string | undefined;
    for (const stream of this.#streams) {
      if (++stream.sinceCheck >= RECHECK_FRAMES) {
        stream.sinceCheck = 0;
        if (this.#access.visitor(stream.req)?.key !== stream.key) {
          stream.res.destroy();
          continue;
        }
      }
      if (!stream.waiting) send(stream, (frame ??= `data: ${JSON.stringify(this.#fleet.snapshot())}\n\n`));
      else if (++stream.missed > this.#maxMissed) stream.res.destroy();
    }
  };

  /**
   * Serves the page's paths; false for any other. A response already under way counts as served,
   * so that the server around (the page service, the gateway) never answers it a second time.
   */
  readonly handle = (req: IncomingMessage, res: ServerResponse): boolean => this.#route(req, res) || res.headersSent;

  #route(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? "/", "http://page");
    const path = url.pathname;
    if (path === "/" || path === "/ui") {
      // The query stays: a notification's link to a fan is /?fan=<id>.
      res.writeHead(302, { location: `/ui/${url.search}` }).end();
      return true;
    }
    if (path === "/ui/events") {
      this.#openStream(req, res);
      return true;
    }
    if (this.#access.handle(req, res)) return true;
    if (path === PAGE_RECEIVER_PATH && !this.#receiverAllowed(req)) {
      sendErrorCode(
        res,
        "FANWATCH_FORBIDDEN",
        `${PAGE_RECEIVER_PATH} takes notifications only from PAGE_ALERTMANAGER_FROM`,
      );
      req.resume();
      return true;
    }
    if (this.#fleet.notifications.handle(req, res)) return true;
    if (this.#api?.handle(req, res) === true) return true;
    if (this.#fanDetail.handle(req, res)) return true;
    const file = uiFile(path);
    if (file === undefined) return false;
    // The pages ask to sign in first; their scripts and style do not, the sign-in form uses them.
    if (file.endsWith(".html") && this.#access.visitor(req) === undefined) {
      res.writeHead(303, { location: `/ui/signin?next=${encodeURIComponent(path + url.search)}` }).end();
      return true;
    }
    serveUiFile(file, res);
    return true;
  }

  #openStream(req: IncomingMessage, res: ServerResponse): void {
    // Another site's page may not take one of the places (EventSource sends no CSRF token).
    const foreign = foreignOrigin(req.headers);
    if (foreign !== undefined) {
      sendErrorCode(res, "FANWATCH_CROSS_SITE", `event stream refused: another site's page asked (${foreign})`);
      return;
    }
    const visitor = this.#access.visitor(req);
    if (visitor === undefined) {
      sendErrorCode(res, "FANWATCH_UNAUTHENTICATED", "sign in first: /ui/signin");
      return;
    }
    const mine = this.#perUser.get(visitor.key) ?? 0;
    if (this.#access.mode !== "off" && mine >= this.#maxPerUser) {
      sendErrorCode(
        res,
        "FANWATCH_PAGE_BUSY",
        `${visitor.user?.name ?? "you"} has the page open in ${mine} places already, the most one user may; close one`,
        { "retry-after": "10" },
      );
      return;
    }
    if (this.stopping || this.#streams.size >= this.#maxStreams) {
      const why = this.stopping
        ? "fanwatch is stopping"
        : `the page is open in ${this.#maxStreams} places already, the most it serves; close one`;
      sendErrorCode(res, "FANWATCH_PAGE_BUSY", why, { "retry-after": "10" });
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    const stream: Stream = { res, waiting: false, missed: 0, key: visitor.key, req, sinceCheck: 0 };
    this.#streams.add(stream);
    this.#perUser.set(visitor.key, mine + 1);
    res.on("close", () => {
      if (!this.#streams.delete(stream)) return;
      const left = (this.#perUser.get(stream.key) ?? 1) - 1;
      if (left > 0) this.#perUser.set(stream.key, left);
      else this.#perUser.delete(stream.key);
    });
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
