import { cp, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { PROMETHEUS_DIR } from "./prometheus.js";

// A stand-in for Kubernetes service discovery, which Debian builds prometheus and promtool without:
// each job's kubernetes_sd_configs of deploy/prometheus/prometheus.yml becomes a file_sd_configs of
// targets carrying the __meta_kubernetes_* labels that discovery would give (the test says which).
// The relabelling, rules and alerting of the shipped file are kept as they are.

/** What a job's Kubernetes discovery would have found: __address__ and __meta_* labels per target. */
export type DiscoveredTargets = Record<string, Array<Record<string, string>>>;

interface ScrapeConfig {
  job_name: string;
  kubernetes_sd_configs?: unknown[];
  file_sd_configs?: Array<{ files: string[] }>;
  authorization?: { credentials_file?: string };
  [key: string]: unknown;
}

interface ShippedConfig {
  global: Record<string, unknown>;
  scrape_configs: ScrapeConfig[];
  [key: string]: unknown;
}

/**
 * A folder holding deploy/prometheus's rules and its prometheus.yml with each job's Kubernetes
 * discovery swapped for a file of `targets` (none when a job is not named), the ServiceAccount
 * token's path for a file of the folder, and the intervals (and the scrapes' timeout) for `scrapeInterval`.
 */
export async function prometheusDirForTest(
  targets: DiscoveredTargets,
  scrapeInterval = "30s",
): Promise<{ dir: string; jobs: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), "fanwatch-prometheus-"));
  await cp(join(PROMETHEUS_DIR, "rules"), join(dir, "rules"), { recursive: true });
  await writeFile(join(dir, "token"), "a-service-account-token");
  const config = parse(await readFile(join(PROMETHEUS_DIR, "prometheus.yml"), "utf8")) as ShippedConfig;
  Object.assign(config.global, {
    scrape_interval: scrapeInterval,
    scrape_timeout: scrapeInterval,
    evaluation_interval: scrapeInterval,
  });
  for (const job of config.scrape_configs) {
    if (job.authorization?.credentials_file !== undefined) job.authorization.credentials_file = join(dir, "token");
    if (job.kubernetes_sd_configs === undefined) continue;
    delete job.kubernetes_sd_configs;
    const file = join(dir, `${job.job_name}.targets.json`);
    const groups = (targets[job.job_name] ?? []).map(({ __address__, ...labels }) => ({
      targets: [__address__],
      labels,
    }));
    await writeFile(file, JSON.stringify(groups));
    job.file_sd_configs = [{ files: [file] }];
  }
  const text = stringify(config, { aliasDuplicateObjects: false });
  if (text.includes("/var/run/secrets")) throw new Error("a cluster path is left in the test's prometheus.yml");
  await writeFile(join(dir, "prometheus.yml"), text);
  return { dir, jobs: config.scrape_configs.map((j) => j.job_name) };
}
