// Renewals: the members search_contacts(renewing_within_days=...) answered, grouped by the week their
// membership ends, with plan and email. Further pages are read through the host with the same arguments.
const MAX_PAGES = 20;
let args = null;
let rows = [];

function isoDay(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(value || ""));
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3])) : null;
}

function weekStart(d) {
  const monday = new Date(d);
  monday.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
  return monday;
}

const fmt = (d, opts) => d.toLocaleDateString(undefined, { timeZone: "UTC", ...opts });

function render(answer) {
  const main = document.getElementById("weeks");
  main.replaceChildren();
  const groups = new Map();
  const sorted = [...rows].sort((a, b) => String(a.end_date || "~").localeCompare(String(b.end_date || "~")));
  for (const r of sorted) {
    const d = isoDay(r.end_date);
    const key = d ? weekStart(d).toISOString().slice(0, 10) : "none";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  for (const [key, people] of groups) {
    const section = el("section", "week");
    const title = key === "none" ? "No end date in the answer"
      : "Week of " + fmt(new Date(key + "T00:00:00Z"), { weekday: "short", day: "numeric", month: "short", year: "numeric" });
    section.append(el("h2", "", null, [el("span", "", title), el("span", "badge", people.length)]));
    const list = el("ul");
    for (const r of people) {
      const d = isoDay(r.end_date);
      const item = el("li", "", null, [
        el("span", "who", r.name || r.uri || "(no name)"),
        el("span", "plan muted", [r.plan, r.auto_renew === true ? "renews automatically" : null].filter(Boolean).join(" · ")),
        r.email ? el("span", "email", r.email) : el("span", "email none", "no email"),
        el("span", "when", d ? fmt(d, { weekday: "short", day: "numeric", month: "short" }) : ""),
      ]);
      item.dataset.uri = r.uri || "";
      list.append(item);
    }
    section.append(list);
    main.append(section);
  }
  if (!rows.length) main.append(el("p", "empty", "Nobody in this answer."));
  const days = args && args.renewing_within_days;
  const total = typeof answer.total === "number" ? answer.total : null;
  document.getElementById("summary").textContent =
    rows.length + (total !== null && total !== rows.length ? " of " + total : "") + " contact(s)" +
    (typeof days === "number" ? ", membership ending within " + days + " days" : "") +
    (answer.next_cursor ? " (more not loaded)" : "");
  const note = document.getElementById("note");
  note.hidden = !answer.note;
  note.textContent = answer.note || "";
}

async function loadAll(answer) {
  // The model's page may be short: read every page again at the largest page size, with the same filters.
  const all = [];
  let cursor = null;
  let last = answer;
  for (let page = 0; page < MAX_PAGES; page++) {
    const call = { ...args, limit: 50 };
    delete call.cursor;
    if (cursor) call.cursor = cursor;
    const next = structured(await bridge.callTool("search_contacts", call).catch(() => null));
    if (!next) return; // keep showing the answer the host gave
    all.push(...(next.contacts || []));
    last = next;
    cursor = next.next_cursor;
    if (!cursor) break;
  }
  rows = all;
  render(last);
}

bridge.on("ui/notifications/tool-input", (params) => { args = params.arguments || null; });
bridge.on("ui/notifications/tool-result", (result) => {
  const answer = structured(result);
  if (!answer) {
    document.getElementById("summary").textContent = errorText(result);
    return;
  }
  rows = answer.contacts || [];
  render(answer);
  if (answer.next_cursor && args) loadAll(answer);
});
bridge.start("sheepcrm-renewals");
