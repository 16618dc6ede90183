/**
 * Resolves once `check` returns true (a thrown error or rejection counts as not yet); rejects,
 * naming `what`, if it has not within `timeoutMs`. For waiting on an outcome that no event
 * announces: a counter reaching a value, a metric, a status.
 */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (
      await Promise.resolve()
        .then(check)
        .catch(() => false)
    )
      return;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20)); // the poll's pace
  }
}
