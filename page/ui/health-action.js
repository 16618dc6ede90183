// One way the page's scripts post an action to health: through the page's API, with the session's
// CSRF token. Resolves to health's answer; throws an Error with health's (or the page's) reason.

export async function postHealthAction(body, csrf) {
  const res = await fetch("/ui/api/health", {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": csrf ?? "" },
    body: JSON.stringify(body),
  });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(answer.error ?? `the page answered ${res.status}`);
  return answer;
}
