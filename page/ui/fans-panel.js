// The Fans panel, for admins (sign-in off: whoever uses this machine): the registry's pending fans
// with Approve and Refuse (refusing retires the fan), its active fans with Retire, and a form to add
// one. Through the page's API (/ui/api/fans) with the session's CSRF token; the registry's errors
// (FANWATCH_DEVICE_UNKNOWN, FANWATCH_DEVICE_ID_INVALID…) are shown as it words them.

const $ = (id) => document.getElementById(id);

/** The session (GET /ui/api/session) and how to ask for the acting person's name with sign-in off. */
let context = null;
/** The registry's counts the list was last read at: a frame with others reads it again. */
let listedAt = "";

export function startFansPanel(session, byName) {
  if (!session.canManageFans || !session.registry) return;
  context = { session, byName };
  $("fans-panel").hidden = false;
  $("add-fan").addEventListener("submit", (event) => {
    event.preventDefault();
    void addFan(event.currentTarget);
  });
  void refresh();
}

/** Called with every frame: the list is read again when the registry's counts moved. */
export function fansFrame(totals) {
  if (context === null || reading) return;
  const at = `${totals.fans}/${totals.pending}`;
  if (at !== listedAt) void refresh(at);
}
/** True while a list is being read: frames come every second, one read at a time is enough. */
let reading = false;

async function refresh(at) {
  reading = true;
  try {
    const res = await fetch("/ui/api/fans");
    const answer = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(answer.error ?? `the page answered ${res.status}`);
    if (at !== undefined) listedAt = at;
    render(answer.fans);
  } catch (error) {
    say(`The fans could not be listed: ${error.message}`, true);
  } finally {
    reading = false;
  }
}

function render(fans) {
  const pending = fans.filter((f) => f.state === "pending");
  const active = fans.filter((f) => f.state === "active");
  $("fans-panel-count").textContent = `(${active.length} active, ${pending.length} pending)`;
  $("no-pending").hidden = pending.length > 0;
  $("pending-fans").replaceChildren(...pending.map((f) => row(f, ["approve", "refuse"])));
  $("active-fans").replaceChildren(...active.map((f) => row(f, ["retire"])));
}

function row(fan, actions) {
  const li = $("fan-row").content.firstElementChild.cloneNode(true);
  li.dataset.fan = fan.id;
  li.dataset.state = fan.state;
  const details = [fan.name, fan.site, fan.location, fan.type].filter((d) => d !== "").join(" · ");
  li.querySelector(".fan-name").textContent =
    fan.state === "pending"
      ? `Fan ${fan.id} · first seen ${new Date(fan.created).toLocaleString()}`
      : `Fan ${fan.id}${details ? ` · ${details}` : ""}`;
  for (const action of ["approve", "refuse", "retire"]) {
    const button = li.querySelector(`.${action}`);
    if (!actions.includes(action)) button.remove();
    else
      button.addEventListener(
        "click",
        () => void act(button, { action: action === "refuse" ? "retire" : action, id: fan.id }),
      );
  }
  return li;
}

async function addFan(form) {
  const data = new FormData(form);
  const text = (name) => (data.get(name) ?? "").toString().trim();
  const body = { action: "add", id: text("id") };
  for (const field of ["name", "site", "location", "type"]) if (text(field) !== "") body[field] = text(field);
  if (await act(form.querySelector("button"), body)) form.reset();
}

/** POST /ui/api/fans; true when the registry took it. */
async function act(button, body) {
  const signedIn = context.session.signIn !== "off";
  const by = signedIn ? "" : context.byName();
  if (!signedIn && by === "") {
    say("Enter your name (under Open alarms) first.", true);
    return false;
  }
  button.disabled = true;
  try {
    const res = await fetch("/ui/api/fans", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": context.session.csrf ?? "" },
      body: JSON.stringify(signedIn ? body : { ...body, by }),
    });
    const answer = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(answer.error ?? `the page answered ${res.status}`);
    const done = { add: "added", approve: "approved", retire: body.action === "retire" ? "retired" : "" };
    say(`Fan ${answer.fan.id} ${done[body.action]}.`, false);
    await refresh();
    return true;
  } catch (error) {
    say(
      `Fan ${body.id || "?"} not ${body.action === "add" ? "added" : body.action === "approve" ? "approved" : "retired"}: ${error.message}`,
      true,
    );
    return false;
  } finally {
    button.disabled = false;
  }
}

function say(text, failed) {
  const message = $("fans-message");
  message.textContent = text;
  message.classList.toggle("failed", failed);
}
