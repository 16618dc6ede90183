import { z } from "zod";

/** A function's replicas as the gateway reports them: desired, and ready to take calls. */
export interface FunctionReplicas {
  name: string;
  replicas: number;
  availableReplicas: number;
}

/** What `GET /system/functions` answers, reduced to what the console and the page show (OpenFaaS's FunctionStatus). */
const FunctionListSchema = z.array(
  z.object({
    name: z.string(),
    replicas: z.number().int().nonnegative(),
    availableReplicas: z.number().int().nonnegative(),
  }),
);

export interface ReplicaPoll {
  /** The replicas of the last answer (in the gateway's order), empty until one came. */
  current: () => { functions: FunctionReplicas[]; error: string | null };
  /** Reads now (a read under way is shared); resolves once answered or failed. */
  read: () => Promise<void>;
  /** Stops reading; safe to call twice. */
  stop: () => void;
}

/**
 * Reads every function's replicas from the gateway's `GET /system/functions` (basic auth) now
 * and every `intervalMs`, until stopped. A failed read keeps the last replicas and says why.
 */
export function pollReplicas(
  url: string,
  options: { intervalMs: number; headers?: Record<string, string> },
): ReplicaPoll {
  let functions: FunctionReplicas[] = [];
  let error: string | null = null;
  let inFlight: Promise<void> | undefined;
  let stopped = false;
  const controller = new AbortController();
  const read = (): Promise<void> =>
    (inFlight ??= (async () => {
      try {
        const res = await fetch(url, {
          headers: { accept: "application/json", ...options.headers },
          signal: AbortSignal.any([controller.signal, AbortSignal.timeout(Math.max(1_000, options.intervalMs))]),
        });
        if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
        const parsed = FunctionListSchema.safeParse(await res.json());
        if (!parsed.success)
          throw new Error(
            `GET ${url}: not a function list (${parsed.error.issues[0]?.path.join(".") || "body"}: ${parsed.error.issues[0]?.message ?? "invalid"})`,
          );
        if (stopped) return;
        functions = parsed.data.map(({ name, replicas, availableReplicas }) => ({ name, replicas, availableReplicas }));
        error = null;
      } catch (e) {
        if (!stopped) error = (e instanceof Error ? e.message : String(e)).slice(0, 300);
      } finally {
        inFlight = undefined;
      }
    })());
  const timer = setInterval(() => void read(), options.intervalMs);
  timer.unref();
  return {
    current: () => ({ functions, error }),
    read,
    stop() {
      stopped = true;
      clearInterval(timer);
      controller.abort();
    },
  };
}

/** "predict 2/3, score 1, health 1": each function's ready replicas, and the desired count when they differ. */
export function replicasLine(functions: readonly FunctionReplicas[]): string {
  return functions
    .map((f) => `${f.name} ${f.availableReplicas === f.replicas ? f.replicas : `${f.availableReplicas}/${f.replicas}`}`)
    .join(", ");
}
