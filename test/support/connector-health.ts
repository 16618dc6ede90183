/** What a connector's /healthz answers, as its operator reads it. */
export interface HealthAnswer {
  /** The HTTP status code. */
  code: number;
  status: string;
  problems: string[];
  deadLettersPending: number;
  /** Why the last refresh of the gateway's function list failed, or null. */
  discoveryError: string | null;
  pending: number;
  bytesInFlight: number;
  /** Why the consumer reads nothing from the broker, or null. */
  paused: string | null;
  /** Each topic filter's session: its client id and whether it reads, is paused or parked. */
  sessions: Array<{ filter: string; clientId: string; state: string }>;
}

export async function healthOf(port: number): Promise<HealthAnswer> {
  const answer = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { code: answer.status, ...((await answer.json()) as Omit<HealthAnswer, "code">) };
}

/** A connector's Prometheus metrics, as scraped. */
export async function metricsOf(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}
