import type { IncomingMessage } from "node:http";
import { BlockList, isIP } from "node:net";
import { z } from "zod";
import { unmapIpv4 } from "../../lib/infra/net.js";

/**
 * The addresses of the proxies in front of the page (PAGE_TRUSTED_PROXIES: addresses and CIDR
 * ranges). Only a request whose TCP peer is one of them may say who the user is (sign-in
 * "proxy"), which client it forwards (X-Forwarded-For, for the sign-in throttle) and that the
 * browser used https (X-Forwarded-Proto, for the cookie's Secure). Anyone else could say anything.
 */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly size: number;

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address = "", bits] = entry.split("/");
      const family = isIP(address) === 6 ? "ipv6" : "ipv4";
      if (bits === undefined) this.#list.addAddress(address, family);
      else this.#list.addSubnet(address, Number(bits), family);
    }
    this.size = entries.length;
  }

  /** Is this request's TCP peer a trusted proxy? */
  trusts(req: IncomingMessage): boolean {
    return this.#has(req.socket.remoteAddress);
  }

  /**
   * The client's address: the peer's, or behind trusted proxies the nearest address in
   * X-Forwarded-For that is not one of theirs (entries further left are the client's to forge).
   */
  clientAddress(req: IncomingMessage): string {
    const peer = req.socket.remoteAddress ?? "unknown";
    if (!this.#has(peer)) return peer;
    const forwarded = String(req.headers["x-forwarded-for"] ?? "")
      .split(",")
      .map((a) => a.trim())
      .filter((a) => a !== "");
    for (let i = forwarded.length - 1; i >= 0; i--) {
      const address = forwarded[i] as string;
      if (isIP(address) === 0) return peer;
      if (!this.#has(address)) return address;
    }
    return peer;
  }

  /** Did the browser reach the page over https (directly, or through a trusted TLS-terminating proxy)? */
  https(req: IncomingMessage): boolean {
    if ("encrypted" in req.socket && req.socket.encrypted === true) return true;
    return (
      this.trusts(req) &&
      String(req.headers["x-forwarded-proto"] ?? "")
        .split(",")[0]
        ?.trim() === "https"
    );
  }

  #has(address: string | undefined): boolean {
    if (address === undefined || this.size === 0) return false;
    const plain = unmapIpv4(address);
    const family = isIP(plain);
    return family !== 0 && this.#list.check(plain, family === 6 ? "ipv6" : "ipv4");
  }
}

/** PAGE_TRUSTED_PROXIES' schema: comma-separated IP addresses or CIDR ranges. */
export const proxyListSchema = z
  .string()
  .default("")
  .transform((text, ctx) => {
    const entries = text
      .split(",")
      .map((e) => e.trim())
      .filter((e) => e !== "");
    for (const entry of entries) {
      const [address = "", bits, extra] = entry.split("/");
      const family = isIP(address);
      const max = family === 6 ? 128 : 32;
      const ok =
        family !== 0 && extra === undefined && (bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= max));
      if (!ok) {
        ctx.addIssue({ code: "custom", message: `${JSON.stringify(entry)} is not an IP address or CIDR range` });
        return z.NEVER;
      }
    }
    return entries;
  });
