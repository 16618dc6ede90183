import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import { SIGN_IN_OUTCOMES, type Access } from "./access/access.js";
import type { WebPage } from "./web-page.js";

/** The page service's Prometheus metrics (docs/page.md), read from the page and its sign-in when scraped. */
export function pageMetrics(page: WebPage, access: Access): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "fanwatch_page_" });
  new Gauge({
    name: "fanwatch_page_sessions",
    help: "Signed-in sessions open (sign-in proxy: users seen since start)",
    registers: [registry],
    collect() {
      this.set(access.stats().sessions);
    },
  });
  new Gauge({
    name: "fanwatch_page_streams",
    help: "Event streams open (pages showing the fleet live)",
    registers: [registry],
    collect() {
      this.set(page.stats().streams);
    },
  });
  const counted = Object.fromEntries(SIGN_IN_OUTCOMES.map((o) => [o, 0]));
  new Counter({
    name: "fanwatch_page_sign_ins_total",
    help: "Sign-in attempts by outcome: success, failure (wrong name or password), throttled (429), refused (forged or expired form)",
    labelNames: ["outcome"],
    registers: [registry],
    collect() {
      const now = access.stats().signIns;
      for (const outcome of SIGN_IN_OUTCOMES) {
        this.inc({ outcome }, now[outcome] - (counted[outcome] ?? 0));
        counted[outcome] = now[outcome];
      }
    },
  });
  return registry;
}
