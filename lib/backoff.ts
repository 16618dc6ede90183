/**
 * Delay before retry `attempt` (1, 2, …): `baseMs` doubled each retry, capped, with ±50% jitter so
 * that clients failing together do not retry together.
 */
export function backoffDelay(baseMs: number, attempt: number, capMs = 30_000): number {
  return Math.min(baseMs * 2 ** (attempt - 1), capMs) * (0.5 + Math.random());
}
