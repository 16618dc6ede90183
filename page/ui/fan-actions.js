// The fan page's actions: who may act (GET /ui/api/session), and a form for each of health's
// actions, posted to POST /ui/api/health with the session's CSRF token.

import { postHealthAction } from "/ui/health-action.js";

const $ = (id) => document.getElementById(id);
let session = null;
let fan = "";
/** The episode a comment, an assignment or a finding is about, and what to do after an action. */
let context = { alarmId: () => null, afterAct: async () => {} };

/** Reads who may act, and shows the forms (or why not); resolves once the session is read. */
export async function setUpActions(deviceID, options) {
  fan = deviceID;
  context = options;
  for (const form of document.querySelectorAll("#action-forms form"))
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void act(form);
    });
  $("by").value = localStorage.getItem("fanwatch.by") ?? "";
  setDefaults();
  await loadSession();
}

async function loadSession() {
  try {
    const res = await fetch("/ui/api/session");
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error ?? `the page answered ${res.status}`);
    session = body;
  } catch (error) {
    session = null;
    $("who").textContent = `Actions unavailable: ${error.message}`;
    $("action-forms").hidden = true;
    return;
  }
  const { signIn, user, canAct } = session;
  $("by-label").hidden = signIn !== "off";
  $("action-forms").hidden = !canAct;
  if (signIn === "off")
    $("who").textContent = "No sign-in here (this machine only): give your name, it is recorded with what you do.";
  else if (user === null) {
    $("who").textContent = "Not signed in: you can see, not act. ";
    const link = document.createElement("a");
    link.href = `/ui/signin?next=${encodeURIComponent(location.pathname)}`;
    link.textContent = "Sign in";
    $("who").append(link);
  } else
    $("who").textContent = canAct
      ? `Signed in as ${user.name} (${user.role}).`
      : `Signed in as ${user.role}: you can see, not act.`;
}

const iso = (local) => new Date(local).toISOString();

/** The body of a form's action; a string says what is missing. */
function actionBody(action, data) {
  const text = (name) => (data.get(name) ?? "").toString().trim();
  const optional = (name) => (text(name) === "" ? {} : { [name]: text(name) });
  const alarmId = context.alarmId();
  const deviceID = fan;
  switch (action) {
    case "acknowledge":
      return { deviceID, action, ...optional("note") };
    case "shelve":
      return { deviceID, action, until: iso(text("until")), ...optional("note") };
    case "maintenance":
      return {
        deviceIDs: [deviceID],
        action,
        ...(text("from") === "" ? {} : { from: iso(text("from")) }),
        until: iso(text("until")),
        ...optional("note"),
      };
    default: {
      if (alarmId === null)
        return `Fan ${deviceID} has had no episode yet: nothing to ${action === "finding" ? "record a finding on" : action}.`;
      const fields =
        action === "comment"
          ? { note: text("note") }
          : action === "assign"
            ? { to: text("to") }
            : { result: text("result"), ...optional("part"), ...optional("sensor"), ...optional("note") };
      return { deviceID, alarmId, action, ...fields };
    }
  }
}

async function act(form) {
  const message = $("action-message");
  const action = form.dataset.action;
  const body = actionBody(action, new FormData(form));
  if (typeof body === "string") return void (message.textContent = body);
  if (session?.signIn === "off") {
    const name = $("by").value.trim();
    if (name === "") {
      message.textContent = "Enter your name first: it is recorded with what you do.";
      return void $("by").focus();
    }
    localStorage.setItem("fanwatch.by", name);
    body.by = name;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  message.textContent = "";
  message.classList.remove("failed");
  try {
    await postHealthAction(body, session?.csrf);
    message.textContent = `Done: ${action === "finding" ? "finding recorded" : `${action} recorded`}.`;
    form.reset();
    setDefaults();
    await context.afterAct();
  } catch (error) {
    message.textContent = `Not done (${action}): ${error.message}`;
    message.classList.add("failed");
  } finally {
    button.disabled = false;
  }
}

/** datetime-local's format of a time some hours from now. */
function hoursFromNow(hours) {
  const at = new Date(Date.now() + hours * 3_600_000);
  at.setMinutes(at.getMinutes() - at.getTimezoneOffset());
  return at.toISOString().slice(0, 16);
}

function setDefaults() {
  document.querySelector('form[data-action="shelve"] [name="until"]').value ||= hoursFromNow(2);
  document.querySelector('form[data-action="maintenance"] [name="until"]').value ||= hoursFromNow(4);
}
