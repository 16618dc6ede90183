import { cp, mkdtemp, readFile, rename, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { PROMETHEUS_DIR } from "./prometheus.js";

// A stand-in for Kubernetes service discovery, which Debian builds prometheus and promtool without:
// each job's kubernetes_sd_configs of deploy/prometheus/prometheus.yml becomes a file_sd_configs of
// targets carrying the __meta_kubernetes_* labels that discovery would give (the test says which).
// The relabelling, rules and alerting of the shipped file are kept as they are, except that, when
// the test gives DNS answers, the alerting's dns_sd_configs (the cluster's DNS, which is not here)
// becomes a file of the addresses those A records would give, at the config's port.

/** What a job's Kubernetes discovery would have found: __address__ and __meta_* labels per target. */
export type DiscoveredTargets = Record<string, Array<Record<string, string>>>;

/** What the cluster's DNS would answer: the A records (IPv4 addresses) of each name. */
export type DnsAnswers = Record<string, string[]>;

/** The ServiceAccount token the folder's jobs send (a file of the folder stands for the mounted one). */
export const SERVICE_ACCOUNT_TOKEN = "a-service-account-token";

interface DnsSdConfig {
  names: string[];
  type?: string;
  port?: number;
}

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
  alerting?: {
    alertmanagers?: Array<{ dns_sd_configs?: DnsSdConfig[]; file_sd_configs?: Array<{ files: string[] }> }>;
  };
  [key: string]: unknown;
}

/**
 * A folder holding deploy/prometheus's rules and its prometheus.yml with each job's Kubernetes
 * discovery swapped for a file of `targets` (none when a job is not named), the ServiceAccount
 * token's path for a file of the folder, and the intervals (and the scrapes' timeout) for
 * `scrapeInterval`. With `dns`, the Alertmanagers' DNS discovery is swapped too, and `answer`
 * changes what "DNS" answers (Prometheus reads the files again when they change).
 */
export async function prometheusDirForTest(
  targets: DiscoveredTargets,
  scrapeInterval = "30s",
  dns?: DnsAnswers,
): Promise<{ dir: string; jobs: string[]; answer: (dns: DnsAnswers) => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "fanwatch-prometheus-"));
  await cp(join(PROMETHEUS_DIR, "rules"), join(dir, "rules"), { recursive: true });
  await writeFile(join(dir, "token"), SERVICE_ACCOUNT_TOKEN);
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
  // Each dns_sd_configs of the alerting as the file its A records would make, at its port.
  const lookups: Array<{ file: string; sd: DnsSdConfig[] }> = [];
  if (dns !== undefined)
    for (const [i, alertmanagers] of (config.alerting?.alertmanagers ?? []).entries()) {
      if (alertmanagers.dns_sd_configs === undefined) continue;
      const file = join(dir, `alertmanagers-${i}.targets.json`);
      lookups.push({ file, sd: alertmanagers.dns_sd_configs });
      delete alertmanagers.dns_sd_configs;
      alertmanagers.file_sd_configs = [{ files: [file] }];
    }
  const answer = async (answers: DnsAnswers) => {
    for (const { file, sd } of lookups) {
      const groups = sd.map((c) => {
        if (c.type !== "A" || c.port === undefined) throw new Error("the stand-in answers A lookups with a port only");
        return { targets: c.names.flatMap((name) => (answers[name] ?? []).map((ip) => `${ip}:${c.port}`)) };
      });
      // Written aside then renamed: Prometheus never reads half a file.
      await writeFile(`${file}.new`, JSON.stringify(groups));
      await rename(`${file}.new`, file);
    }
  };
  if (dns !== undefined) await answer(dns);
  const text = stringify(config, { aliasDuplicateObjects: false });
  if (text.includes("/var/run/secrets")) throw new Error("a cluster path is left in the test's prometheus.yml");
  await writeFile(join(dir, "prometheus.yml"), text);
  return { dir, jobs: config.scrape_configs.map((j) => j.job_name), answer };
}
