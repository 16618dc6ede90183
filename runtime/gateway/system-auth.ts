import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Counter, type Registry } from "prom-client";
import { basicAuthHeader } from "../../lib/infra/http/basic-auth.js";
import { addressKey, AttemptThrottle } from "../../lib/infra/http/attempt-throttle.js";
import { sendErrorCode } from "../../lib/infra/http/error-answer.js";
import type { Logger } from "../../lib/infra/log.js";

export interface SystemAuthOptions {
  credentials: { user: string; password: string };
  /** How failed logins are throttled per client address (GATEWAY_LOGIN_*). */
  login: { maxFailures: number; firstWaitMs: number; maxWaitMs: number };
  registry: Registry;
  log: Logger;
}

/**
 * The basic auth of /system/*, with failed logins throttled per client address: after
 * GATEWAY_LOGIN_FAILURES wrong credentials an address gets 429 FANWATCH_TOO_MANY_ATTEMPTS and
 * Retry-After, the right password included (checking it while waiting would let the guessing go
 * on), and each further failure doubles the wait. A request without credentials is not a guess
 * (a browser sends one before it asks its user for the password), so it is refused but not counted.
 */
export class SystemAuth {
  readonly #expected: Buffer;
  readonly #throttle: AttemptThrottle;
  readonly #refusals: Counter;
  readonly #log: Logger;

  constructor(options: SystemAuthOptions) {
    this.#expected = Buffer.from(basicAuthHeader(options.credentials));
    this.#throttle = new AttemptThrottle(options.login);
    this.#refusals = new Counter({
      name: "gateway_system_auth_refusals_total",
      help: "Requests to /system/* refused: without credentials (missing), with wrong ones (wrong), or while their address waits after failed logins (throttled)",
      labelNames: ["reason"],
      registers: [options.registry],
    });
    this.#log = options.log;
  }

  /** Whether the request may use /system/*; when not, it has been answered (401 or 429). */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    const key = addressKey(req.socket.remoteAddress);
    const waiting = this.#throttle.check(key);
    if (!waiting.allowed) {
      this.#refusals.inc({ reason: "throttled" });
      sendErrorCode(
        res,
        "FANWATCH_TOO_MANY_ATTEMPTS",
        `too many failed /system logins from this address: try again in ${waiting.retryAfterSeconds} s (GATEWAY_LOGIN_FAILURES, GATEWAY_LOGIN_WAIT)`,
        { "retry-after": String(waiting.retryAfterSeconds) },
      );
      return false;
    }
    const given = req.headers.authorization;
    if (given !== undefined && this.#matches(given)) {
      this.#throttle.recordSuccess(key);
      return true;
    }
    this.#refusals.inc({ reason: given === undefined ? "missing" : "wrong" });
    if (given !== undefined) {
      const verdict = this.#throttle.recordFailure(key);
      if (!verdict.allowed)
        this.#log.warn(
          { event: "login_throttled", client: key, waitSeconds: verdict.retryAfterSeconds },
          `failed /system logins from ${key}: it waits ${verdict.retryAfterSeconds} s`,
        );
    }
    sendErrorCode(
      res,
      "FANWATCH_UNAUTHORIZED",
      "the /system API needs basic auth (the user and password fanwatch start printed)",
      {
        "www-authenticate": 'Basic realm="fanwatch gateway"',
      },
    );
    return false;
  }

  #matches(given: string): boolean {
    const bytes = Buffer.from(given);
    return bytes.length === this.#expected.length && timingSafeEqual(bytes, this.#expected);
  }
}
