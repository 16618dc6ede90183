import { parse, parseAllDocuments } from "yaml";
import { z } from "zod";
import { UsageError } from "../../lib/errors.js";

/**
 * The images OpenFaaS Community Edition runs, as keys of its chart's values.yaml, for the values
 * deploy/k3s/base/openfaas.yaml gives (openfaasPro false, async on, Prometheus and Alertmanager
 * created): the gateway Deployment's two containers, the CE queue-worker, the NATS Streaming
 * server CE's async uses (the `stan` image: `nats` is Pro's), Prometheus and Alertmanager.
 */
export const CE_IMAGE_KEYS = [
  "gateway.image",
  "faasnetes.image",
  "queueWorker.image",
  "stan.image",
  "prometheus.image",
  "alertmanager.image",
] as const;

type ChartImages = Record<(typeof CE_IMAGE_KEYS)[number], string>;

/**
 * Those keys' values in the chart versions we have read (faas-netes chart/openfaas/values.yaml at
 * the commit that set `version: 15.0.6`). Another version: pass its values.yaml with
 * --chart-values (`helm show values openfaas/openfaas --version <v>`), then add it here.
 */
export const KNOWN_CHARTS: Readonly<Record<string, ChartImages>> = {
  "15.0.6": {
    "gateway.image": "ghcr.io/openfaas/gateway:0.27.13",
    "faasnetes.image": "ghcr.io/openfaas/faas-netes:0.18.17",
    "queueWorker.image": "ghcr.io/openfaas/queue-worker:0.14.2",
    "stan.image": "nats-streaming:0.25.6",
    "prometheus.image": "prom/prometheus:v3.11.3",
    "alertmanager.image": "prom/alertmanager:v0.32.1",
  },
};

const HelmChartSchema = z.object({
  kind: z.literal("HelmChart"),
  spec: z.object({ chart: z.literal("openfaas"), version: z.string(), valuesContent: z.string().optional() }),
});

/** The chart version and the values it is given, from the HelmChart in a manifest file. */
export function readHelmChart(text: string, file: string): { version: string; values: unknown } {
  for (const doc of parseAllDocuments(text)) {
    const parsed = HelmChartSchema.safeParse(doc.toJS());
    if (parsed.success)
      return { version: parsed.data.spec.version, values: parse(parsed.data.spec.valuesContent ?? "") };
  }
  throw new UsageError(`${file} has no HelmChart of the chart "openfaas" with a spec.version`);
}

/** The value at a dotted key ("gateway.image") of a parsed values document, if it is a string. */
function valueAt(values: unknown, key: string): string | undefined {
  let node: unknown = values;
  for (const part of key.split(".")) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return typeof node === "string" ? node : undefined;
}

/**
 * OpenFaaS CE's images for a chart version, each the chart's default unless our valuesContent
 * sets it: from `chartValues` (a values.yaml's text) when given, else from KNOWN_CHARTS.
 */
export function chartImages(
  version: string,
  ourValues: unknown,
  chartValues?: { text: string; file: string },
): Array<{ key: string; image: string }> {
  const defaults = chartValues === undefined ? KNOWN_CHARTS[version] : undefined;
  const values: unknown = chartValues === undefined ? undefined : parse(chartValues.text);
  if (chartValues === undefined && defaults === undefined)
    throw new UsageError(
      `the OpenFaaS chart ${version} is not one whose images we know (${Object.keys(KNOWN_CHARTS).join(", ")}): pass its values.yaml with --chart-values (helm show values openfaas/openfaas --version ${version})`,
    );
  return CE_IMAGE_KEYS.map((key) => {
    const image = valueAt(ourValues, key) ?? defaults?.[key] ?? valueAt(values, key);
    if (image === undefined)
      throw new UsageError(
        `${chartValues?.file ?? "the chart's values"} has no ${key}: is it the openfaas chart's values.yaml?`,
      );
    return { key, image };
  });
}
