// The membership card: shows what check_membership / my_membership answered, nothing more.
const STATUS = {
  current: ["Current", "tone-ok"],
  grace: ["Grace period", "tone-warn"],
  unpaid: ["Not paid", "tone-warn"],
  future: ["Not started", "tone-info"],
  pending: ["Pending", "tone-warn"],
  lapsed: ["Lapsed", "tone-bad"],
  cancelled: ["Cancelled", "tone-bad"],
  none: ["No membership", ""],
  unknown: ["Unknown", "tone-warn"],
};

function fact(list, label, value) {
  if (value === undefined || value === null || value === "") return;
  list.append(el("dt", "", label), el("dd", "", value));
}

function render(answer) {
  const main = document.getElementById("card");
  main.replaceChildren();
  const status = typeof answer.status === "string" ? answer.status : "unknown";
  const [label, tone] = Object.hasOwn(STATUS, status) ? STATUS[status] : [status, ""]; // as the answer says it
  const card = el("section", "card");
  const head = el("header");
  const who = el("div", "", null, [
    el("h1", "", answer.name || "Membership"),
    answer.plan ? el("p", "muted", answer.plan) : null,
  ]);
  const badge = el("span", "badge status " + tone, label);
  badge.dataset.status = status;
  head.append(who, badge);
  card.append(head);
  if (typeof answer.days_left === "number") {
    card.append(el("p", "", null, [el("span", "days", answer.days_left), el("span", "muted", " days left")]));
  }
  const facts = el("dl", "facts");
  if (typeof answer.is_member === "boolean") fact(facts, "Member today", answer.is_member ? "yes" : "no");
  fact(facts, "Plan", answer.plan);
  fact(facts, "From", answer.start_date);
  fact(facts, "Until", answer.end_date);
  fact(facts, "Grace until", answer.grace_until);
  fact(facts, "Number", answer.membership_number);
  if (facts.childElementCount) card.append(facts);
  if (answer.summary) card.append(el("p", "summary", answer.summary));
  // A next step only when the answer names one: the card adds no advice of its own.
  if (answer.next_step) card.append(el("div", "next", null, [el("h2", "", "What to do next"), el("p", "", answer.next_step)]));
  if (Array.isArray(answer.history) && answer.history.length) {
    const list = el("ul", "history");
    for (const r of answer.history) {
      list.append(el("li", "", [r.plan, r.status, [r.start_date, r.end_date].filter(Boolean).join(" → ")]
        .filter(Boolean).join(" · ")));
    }
    card.append(el("h2", "", "History"), list);
  }
  main.append(card);
}

bridge.on("ui/notifications/tool-result", (result) => {
  const answer = structured(result);
  const main = document.getElementById("card");
  if (answer) render(answer);
  else main.replaceChildren(el("p", "notice", errorText(result)));
});
bridge.start("sheepcrm-membership-card");
