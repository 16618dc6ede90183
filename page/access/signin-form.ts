/** The sign-in page: a plain form, no script, styled by the page's own style sheet. */
export function signInForm(options: { csrf: string; next: string; name?: string; message?: string }): string {
  const message =
    options.message === undefined ? "" : `<p class="signin-error" role="alert">${escape(options.message)}</p>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fanwatch · sign in</title>
<link rel="stylesheet" href="/ui/style.css">
</head>
<body>
<main class="signin">
<h1>fanwatch</h1>
${message}
<form method="post" action="/ui/signin">
<input type="hidden" name="csrf" value="${escape(options.csrf)}">
<input type="hidden" name="next" value="${escape(options.next)}">
<p><label>Name <input name="name" autocomplete="username" required value="${escape(options.name ?? "")}"></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
<p><button type="submit">Sign in</button></p>
</form>
</main>
</body>
</html>
`;
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Where to go after signing in: a path of the page's own, never another site (`//evil`, `/\\evil`),
 * and only printable ASCII (no space, no backslash): a control character would make the Location
 * header one Node refuses to send, after the session was made. A browser sends the rest encoded.
 */
const NEXT = /^\/ui\/[\x21-\x5b\x5d-\x7e]*$/;

export function safeNext(next: string | undefined): string {
  return next !== undefined && NEXT.test(next) && next.length <= 2048 ? next : "/ui/";
}
