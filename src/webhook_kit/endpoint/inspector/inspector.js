// The inspector: lists what the endpoint received, live, newest first. No dependencies.
const MAX_RECORDS = 2000;
const FAMILIES = {
  "on-course": "created",
  "document-uploaded": "upload", "document2-uploaded": "upload", "documen2-uploaded": "upload",
  "document3-uploaded": "upload", "selfie-uploaded": "upload", "video-uploaded": "upload",
  "cancelled": "final", "confirmed": "final", "deleted": "final",
};

const $ = (id) => document.getElementById(id);
const state = { records: [], open: new Set() };

function family(record) { return FAMILIES[record.status] || "unknown"; }

function matches(record) {
  const status = $("filter-status").value;
  const result = $("filter-result").value;
  const search = $("search").value.trim().toLowerCase();
  if (status && record.status !== status) return false;
  if (result === "accepted" && !record.accepted) return false;
  if (result === "rejected" && record.accepted) return false;
  if (search && !(record.validation_id || "").toLowerCase().includes(search)) return false;
  return true;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function timeOf(record) {
  const text = record.received_at || "";
  return text.length >= 23 ? text.slice(11, 23) : text;
}

function resultOf(record) {
  const wrap = el("span", { class: "result" });
  if (record.accepted) wrap.append(el("span", { class: "badge ok", text: `${record.http_status || 200} accepted` }));
  else wrap.append(el("span", { class: "badge bad", text: "rejected" }));
  if (record.duplicate) wrap.append(el("span", { class: "badge dup", text: "duplicate", title: "same Webhook-Id seen before" }));
  if (!record.accepted) wrap.append(el("span", { class: "reason", text: record.reason || "" }));
  return wrap;
}

function row(record, fresh) {
  const fam = family(record);
  const details = el("details", {
    class: `row fam-${fam} ${record.accepted ? "accepted" : "rejected"}${fresh ? " fresh" : ""}`,
    "data-id": String(record.id), "data-status": record.status || "", "data-validation": record.validation_id || "",
  });
  if (state.open.has(record.id)) details.open = true;
  details.addEventListener("toggle", () => {
    if (details.open) state.open.add(record.id); else state.open.delete(record.id);
  });
  const summary = el("summary", {},
    el("span", { class: "time", text: timeOf(record), title: record.received_at || "" }),
    el("span", { class: "status", text: record.status || "(no status)" }),
    resultOf(record),
    el("span", { class: "ids event", text: `event ${record.event_id || "–"}`, title: record.event_id || "" }),
    el("span", { class: "ids validation", text: `validation ${record.validation_id || "–"}`, title: record.validation_id || "" }),
  );
  const payload = record.body !== undefined ? JSON.stringify(record.body, null, 2) : (record.body_text || "(no body)");
  const detail = el("div", { class: "detail" },
    el("section", {}, el("h3", { text: "payload" }), el("pre", { class: "payload", text: payload })),
    el("section", {}, el("h3", { text: `headers · ${record.method || "POST"} ${record.path || ""} · HTTP/${record.http_version || "?"}` }),
      el("pre", { class: "headers", text: JSON.stringify(record.headers || {}, null, 2) })),
  );
  details.append(summary, detail);
  return details;
}

function grouped(records) {
  const groups = new Map();
  for (const record of records) {
    const key = record.validation_id || "(no validation id)";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(record);
  }
  const out = [];
  for (const [key, items] of groups) {
    items.sort((a, b) => a.id - b.id);  // a validation's timeline reads oldest to newest
    const timeline = el("ol", { class: "timeline", "aria-label": `status timeline of ${key}` });
    for (const item of items) {
      timeline.append(el("li", {
        class: `fam-${family(item)}${item.accepted ? "" : " rejected"}`,
        text: item.status || "?", title: `${timeOf(item)} ${item.reason || ""}`,
      }));
    }
    out.push(el("section", { class: "group", "data-validation": key }, el("h2", { text: key }), timeline));
  }
  return out;
}

function render(freshId) {
  const list = $("list");
  const visible = state.records.filter(matches);
  list.replaceChildren();
  if (!state.records.length) list.append($("empty-template").content.cloneNode(true));
  else if ($("group").checked) list.append(...grouped(visible));
  else list.append(...visible.map((r) => row(r, r.id === freshId)));
  const rejected = state.records.filter((r) => !r.accepted).length;
  $("summary").textContent = `${visible.length} shown of ${state.records.length} received (${rejected} rejected)`;
}

function add(record) {
  if (state.records.some((r) => r.id === record.id)) return;
  state.records.unshift(record);
  if (state.records.length > MAX_RECORDS) state.records.length = MAX_RECORDS;
  render(record.id);
}

async function load() {
  const response = await fetch("/_kit/deliveries", { cache: "no-store" });
  const data = await response.json();
  const loaded = data.deliveries.slice().reverse();
  const known = new Set(loaded.map((r) => r.id));
  // Records that arrived on the stream while the list loaded are kept, newest first.
  state.records = state.records.filter((r) => !known.has(r.id)).concat(loaded);
  state.records.sort((a, b) => b.id - a.id);
  render();
}

function connect() {
  const connection = $("connection");
  const source = new EventSource("/_kit/stream");
  let opened = false;
  source.addEventListener("open", () => {
    connection.textContent = "live"; connection.className = "connection live";
    // After a reconnect (or being dropped as too slow) the list may have missed records.
    if (opened) load().catch(() => {});
    opened = true;
  });
  source.addEventListener("error", () => { connection.textContent = "reconnecting…"; connection.className = "connection down"; });
  source.addEventListener("request", (event) => add(JSON.parse(event.data)));
  source.addEventListener("clear", () => { state.records = []; state.open.clear(); render(); });
}

for (const id of ["filter-status", "filter-result", "group"]) $(id).addEventListener("change", () => render());
$("search").addEventListener("input", () => render());
$("clear").addEventListener("click", async () => {
  // The header marks the request as the page's own: cross-site pages cannot send it.
  await fetch("/_kit/deliveries", { method: "DELETE", headers: { "X-Webhook-Kit": "1" } });
  state.records = []; state.open.clear(); render();
});

connect();
load().catch((error) => { $("summary").textContent = `could not load: ${error}`; });
