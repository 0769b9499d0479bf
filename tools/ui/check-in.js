// The check-in board: one event's attendance sessions grouped by status, searchable, guests shown as guests.
// Marking people is a call to set_attendance through the host (so the server's gate previews it, asks the person,
// re-reads, writes, audits and offers the undo); the board then reads the list again and shows the new state.
const ORDER = ["accepted", "invited", "attended", "no-show", "declined"];
const TONES = { attended: "tone-ok", "no-show": "tone-bad", declined: "tone-warn", accepted: "tone-info" };
const tone = (status) => (Object.hasOwn(TONES, status) ? TONES[status] : "");
const BATCH = 50; // set_attendance takes 1-50 people per call
const MAX_PAGES = 40;

const board = {
  uid: null, // the event, from the tool call's arguments
  sessions: [],
  counts: {},
  selected: new Set(), // person uris
  outcomes: new Map(), // person uri -> [text, tone]
  busy: false,
};

const $ = (id) => document.getElementById(id);
const uidOf = (uri) => String(uri || "").split("/").filter(Boolean)[2] || "";
const markable = (s) => canWrite() && board.uid && s.person_uri && !s.guest;

function bookerName(s) {
  const booker = board.sessions.find((o) => o.person_uri === s.person_uri && !o.guest);
  return booker ? booker.name : null;
}

function render() {
  const groups = new Map();
  for (const s of board.sessions) {
    const status = String(s.status || "unknown");
    if (!groups.has(status)) groups.set(status, []);
    groups.get(status).push(s);
  }
  const statuses = [...ORDER.filter((k) => groups.has(k)), ...[...groups.keys()].filter((k) => !ORDER.includes(k)).sort()];
  const main = $("groups");
  main.replaceChildren();
  for (const status of statuses) {
    const people = groups.get(status).slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const details = el("details", "group");
    details.open = true;
    details.dataset.status = status;
    const count = el("span", "badge " + tone(status), people.length);
    details.append(el("summary", "", null, [el("span", "", status), count]));
    const list = el("ul");
    for (const s of people) list.append(row(s));
    details.append(list);
    main.append(details);
  }
  if (!board.sessions.length) main.append(el("p", "empty", "No attendance sessions in the answer."));
  const counts = $("counts");
  counts.replaceChildren();
  for (const [status, n] of Object.entries(board.counts || {})) {
    counts.append(el("span", "badge " + tone(status), status + " " + n));
  }
  filter();
  updateActions();
}

function row(s) {
  const item = el("li", "row");
  item.dataset.person = s.person_uri || "";
  item.dataset.search = [s.name, s.email].filter(Boolean).join(" ").toLowerCase();
  const sub = [s.ticket, s.email].filter(Boolean);
  if (s.guest) {
    const booker = bookerName(s);
    sub.unshift(booker ? "guest of " + booker : "guest");
  }
  const mark = el("span", "mark");
  if (s.guest) mark.append(el("span", "badge", "guest"));
  const outcome = board.outcomes.get(s.person_uri);
  if (outcome && !s.guest) mark.append(el("span", "badge outcome " + outcome[1], outcome[0]));
  const parts = [el("span", "name", s.name || "(no name)"), mark, el("span", "sub", sub.join(" · "))];
  if (markable(s)) {
    const box = el("input");
    box.type = "checkbox";
    box.checked = board.selected.has(s.person_uri);
    box.setAttribute("aria-label", "Select " + (s.name || "attendee"));
    box.addEventListener("change", () => toggle(s.person_uri, box.checked));
    item.classList.toggle("selected", box.checked);
    item.append(el("label", "", null, [box, ...parts]));
  } else {
    item.append(el("div", "line", null, [el("span"), ...parts]));
  }
  return item;
}

function toggle(person, on) {
  if (on) board.selected.add(person);
  else board.selected.delete(person);
  for (const item of document.querySelectorAll(".row")) {
    if (item.dataset.person !== person) continue;
    const box = item.querySelector("input[type=checkbox]");
    if (box) box.checked = on;
    item.classList.toggle("selected", on);
  }
  updateActions();
}

function filter() {
  const words = $("search").value.toLowerCase().split(/\s+/).filter(Boolean);
  for (const details of document.querySelectorAll(".group")) {
    let shown = 0;
    const rows = details.querySelectorAll(".row");
    for (const item of rows) {
      const match = words.every((w) => item.dataset.search.includes(w));
      item.hidden = !match;
      if (match) shown++;
    }
    details.hidden = shown === 0;
    details.querySelector("summary .badge").textContent = shown === rows.length ? rows.length : shown + " of " + rows.length;
  }
}

function updateActions() {
  const writes = canWrite() && board.uid;
  $("actions").hidden = !writes;
  if (!writes) return;
  const n = board.selected.size;
  const shown = new Set([...document.querySelectorAll(".row:not([hidden])")].map((r) => r.dataset.person));
  const unseen = [...board.selected].filter((p) => !shown.has(p)).length;
  $("selected").textContent = n + " selected" + (unseen ? " (" + unseen + " not shown)" : "")
    + (n > BATCH ? " (" + Math.ceil(n / BATCH) + " approvals)" : "");
  for (const id of ["mark-attended", "mark-no-show", "clear"]) $(id).disabled = board.busy || n === 0;
}

async function loadAll() {
  const sessions = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const call = { uid: board.uid, limit: 50 };
    if (cursor) call.cursor = cursor;
    const result = await bridge.callTool("list_attendees", call);
    const answer = structured(result);
    if (!answer) { showNote(errorText(result)); return false; }
    sessions.push(...(answer.attendees || []));
    board.counts = answer.counts || {};
    $("event").textContent = answer.event || "Check-in";
    $("summary").textContent = "Reading the list… " + sessions.length;
    cursor = answer.next_cursor;
    if (!cursor) { showNote(answer.note || ""); break; }
  }
  board.sessions = sessions;
  $("summary").textContent = sessions.length + " session(s)" + (cursor ? " (the first " + sessions.length + " only)" : "");
  render();
  return true;
}

function showNote(text) {
  $("note").hidden = !text;
  $("note").textContent = text || "";
}

// The person uid a change line names: set_attendance labels each change "<name> (<uid>)[, all N sessions]".
function changedUid(target) {
  // the gate names a record by its id first, whole, then its name quoted: `<uid> "Name"[, all N sessions]`
  const m = /^([^\s"]+)/.exec(String(target || ""));
  return m ? m[1] : null;
}

async function mark(status, people) {
  board.busy = true;
  updateActions();
  const list = $("outcome-list");
  list.replaceChildren();
  $("outcome").hidden = false;
  $("undo-all").hidden = true;
  $("again").hidden = true;
  const messages = [];
  const undos = [];
  const waiting = []; // approved out of band (a page the server opened for the person): the same call again
  for (let i = 0; i < people.length; i += BATCH) {
    const batch = people.slice(i, i + BATCH);
    $("outcome-message").textContent = "Waiting for approval of " + batch.length + " change(s)…";
    let result;
    try {
      result = await bridge.callTool("set_attendance", { uid: board.uid, person_uris: batch, status });
    } catch (err) {
      result = { isError: true, content: [{ type: "text", text: String(err.message || err) }] };
    }
    const answer = structured(result);
    messages.push(answer ? answer.message : errorText(result));
    const lines = new Map();
    for (const c of (answer && answer.changes) || []) lines.set(changedUid(c.target), c);
    for (const person of batch) {
      const c = lines.get(uidOf(person));
      let text, look;
      if (!answer) [text, look] = ["not changed", "tone-bad"];
      else if (answer.status === "not_approved") [text, look] = ["not approved", "tone-warn"];
      else if (answer.status === "approval_required") [text, look] = ["awaiting approval", "tone-warn"];
      else if (c && c.result === "applied") [text, look] = [c.after + " ✓", tone(c.after) || "tone-ok"];
      else if (c && c.result === "unknown") [text, look] = ["unknown: check", "tone-warn"];
      else if (c) [text, look] = ["not applied", "tone-bad"];
      else [text, look] = ["already " + status, ""];
      board.outcomes.set(person, [text, look]);
      const session = board.sessions.find((s) => s.person_uri === person && !s.guest);
      const item = el("li", "", null, [el("span", "who", session ? session.name : person), el("span", "badge " + look, text)]);
      if (c && c.result === "applied" && ORDER.includes(c.before)) {
        const undo = el("button", "", "Undo");
        undo.type = "button";
        undo.addEventListener("click", () => mark(c.before, [person]));
        item.append(undo);
      }
      list.append(item);
    }
    if (answer && answer.undo && answer.undo.tool === "set_attendance") undos.push(answer.undo.arguments);
    if (answer && answer.status === "approval_required") waiting.push(...batch);
  }
  // Every outcome ends the selection: a later write never carries someone picked for an earlier one.
  board.selected.clear();
  $("outcome-message").textContent = messages.join(" ");
  const undoAll = $("undo-all");
  undoAll.hidden = !(undos.length === 1 && people.length > 1);
  undoAll.onclick = undos.length === 1 ? () => mark(undos[0].status, undos[0].person_uris) : null;
  const again = $("again");
  again.hidden = waiting.length === 0;
  again.onclick = waiting.length ? () => mark(status, waiting) : null;
  if (!(await loadAll())) render();
  board.busy = false;
  updateActions();
}

$("search").addEventListener("input", () => { filter(); updateActions(); });
$("mark-attended").addEventListener("click", () => mark("attended", [...board.selected]));
$("mark-no-show").addEventListener("click", () => mark("no-show", [...board.selected]));
$("clear").addEventListener("click", () => { for (const p of [...board.selected]) toggle(p, false); });

bridge.on("ui/notifications/tool-input", (params) => {
  const args = params.arguments || {};
  board.uid = typeof args.uid === "string" ? args.uid : null;
  if (typeof args.name === "string" && args.name && !args.name.includes("@") && !args.name.startsWith("/")) {
    $("search").value = args.name;
  }
});
bridge.on("ui/notifications/tool-result", async (result) => {
  const answer = structured(result);
  if (!answer) { $("summary").textContent = errorText(result); return; }
  $("event").textContent = answer.event || "Check-in";
  board.sessions = answer.attendees || [];
  board.counts = answer.counts || {};
  $("summary").textContent = board.sessions.length + " session(s) in the answer";
  showNote(answer.note || "");
  render();
  if (board.uid) await loadAll(); // the whole list, not only the page (or filter) the model asked for
});
bridge.start("sheepcrm-check-in").then((init) => {
  const dims = (init.hostContext || {}).containerDimensions || {};
  const height = dims.height || dims.maxHeight;
  if (typeof height === "number" && height > 320) {
    document.documentElement.style.setProperty("--list-height", Math.max(240, height - 220) + "px");
  }
});
