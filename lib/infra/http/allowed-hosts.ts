import { isIP } from "node:net";
import { hostname as machineHostname } from "node:os";
import { z } from "zod";

/**
 * The guard against DNS rebinding for the servers a browser reaches (the local gateway, which
 * serves the page under `fanwatch start`, and the page service). A page of another site whose
 * name the attacker makes resolve to this machine is "same-origin" to the browser, so neither
 * `Sec-Fetch-Site` nor `Origin` gives it away, and an old browser sends neither. What does is the
 * `Host` header: it carries the attacker's name. So a server answers only Hosts whose name no
 * outside site controls:
 *
 * - loopback names: `localhost`, `127.0.0.1` (any 127.x), `[::1]`;
 * - IP address literals, any address: rebinding needs a name to re-resolve;
 * - this machine's own host name and `<hostname>.local`, resolved by the local network's DNS or
 *   mDNS and not by an outside site (the functions' template accepts the same, templates/node22-ts/guard.ts);
 * - the names the server's setting lists (GATEWAY_HOSTS, PAGE_HOSTS).
 *
 * A request without a Host is answered: browsers always send one (HTTP/1.0 clients may not, and
 * Node refuses an HTTP/1.1 request without one itself). The port is not compared: a browser
 * reaches the server only on the port it listens on, whatever the name.
 */

export interface AllowedHostsOptions {
  /** Names answered besides loopback, IP addresses and this machine's name, as the setting lists them. */
  names: readonly string[];
  /** The setting that lists them, named in the refusal ("GATEWAY_HOSTS"). */
  setting: string;
  /** This machine's host name. @default os.hostname() */
  hostname?: string;
}

export class AllowedHosts {
  readonly #names: ReadonlySet<string>;
  readonly #setting: string;

  constructor(options: AllowedHostsOptions) {
    const own = normalName(options.hostname ?? machineHostname());
    const listed = options.names.map(normalName);
    this.#names = new Set(["localhost", ...(own === "" ? [] : [own, `${own}.local`]), ...listed]);
    this.#setting = options.setting;
  }

  /**
   * Why a request with this `Host` header is refused, if it is: the message of a 421
   * FANWATCH_HOST_REFUSED, naming the setting that would allow the name.
   */
  refusal(header: string | undefined): string | undefined {
    if (header === undefined) return undefined;
    const name = hostName(header);
    if (name === undefined) return `Host ${JSON.stringify(header.slice(0, 200))} is not a host name or address`;
    if (isIP(name) !== 0 || this.#names.has(name)) return undefined;
    return (
      `Host ${JSON.stringify(header.slice(0, 200))} is not a name this server answers for (a guard against DNS rebinding): ` +
      `call it by localhost, 127.0.0.1 or an IP address, or list the name in ${this.#setting}`
    );
  }
}

/**
 * The name or address a Host header names, without its port and an IPv6 literal's brackets,
 * lower-case and without a trailing dot; undefined when the header is neither.
 */
export function hostName(header: string): string | undefined {
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::\d*)?$/.exec(header);
  if (bracketed !== null)
    return isIP(bracketed[1] as string) === 6 ? (bracketed[1] as string).toLowerCase() : undefined;
  const plain = /^([^:\s[\]/@]+)(?::\d*)?$/.exec(header);
  return plain === null ? undefined : normalName(plain[1] as string);
}

function normalName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, "");
}

/**
 * A setting's schema for the names a server answers besides its own (GATEWAY_HOSTS, PAGE_HOSTS):
 * a comma-separated list of host names; a port given with one is dropped, since it is not compared.
 */
export function hostListSchema(): z.ZodType<string[], string | undefined> {
  return z
    .string()
    .default("")
    .transform((text, ctx) => {
      const names: string[] = [];
      for (const item of text.split(",").map((h) => h.trim())) {
        if (item === "") continue;
        const name = hostName(item);
        if (name === undefined) {
          ctx.addIssue({ code: "custom", message: `${JSON.stringify(item)} is not a host name` });
          return z.NEVER;
        }
        names.push(name);
      }
      return names;
    });
}
