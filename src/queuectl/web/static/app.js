// queuectl dashboard: live refresh and actions. Data is only ever put into the
// page with textContent (never innerHTML), so job data is shown as text.
"use strict";

const REFRESH_MS = 2000;
const STATES = ["pending", "processing", "completed", "failed", "dead", "cancelled"];
const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
const readOnly = () => document.body.dataset.readOnly === "yes";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function flash(text, isError) {
  const f = document.getElementById("flash");
  f.textContent = text;
  f.className = "flash" + (isError ? " error" : "");
  f.hidden = false;
}

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.statusText);
  return r.json();
}

async function post(path, body) {
  const r = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: JSON.stringify(body || {}),
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function jobLink(id) {
  return el("a", { href: "/jobs/" + encodeURIComponent(id) }, id);
}

function setRows(tbody, rows, emptyText, cols) {
  tbody.replaceChildren();
  if (!rows.length) {
    tbody.append(el("tr", { class: "empty" }, el("td", { colspan: String(cols) }, emptyText)));
    return;
  }
  for (const cells of rows) tbody.append(el("tr", {}, ...cells.map((c) => el("td", {}, c))));
}

// ---------------------------------------------------------------- overview
function drawChart(buckets) {
  const box = document.getElementById("chart");
  const W = 600, H = 120, pad = 2;
  const max = Math.max(1, ...buckets.map((b) => b.completed + b.failed));
  const bw = W / buckets.length;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  buckets.forEach((b, i) => {
    const okH = (b.completed / max) * (H - pad), badH = (b.failed / max) * (H - pad);
    for (const [h, y, cls] of [[okH, H - okH, "ok"], [badH, H - okH - badH, "bad"]]) {
      if (h <= 0) continue;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", String(i * bw + 1));
      r.setAttribute("y", String(y));
      r.setAttribute("width", String(Math.max(1, bw - 2)));
      r.setAttribute("height", String(h));
      r.setAttribute("class", cls);
      const t = document.createElementNS(ns, "title");
      t.textContent = `${b.at.slice(11, 16)} UTC: ${b.completed} completed, ${b.failed} failed`;
      r.append(t);
      svg.append(r);
    }
  });
  box.replaceChildren(svg);
  const done = buckets.reduce((a, b) => a + b.completed, 0);
  const attempts = buckets.reduce((a, b) => a + b.attempts, 0);
  const failed = buckets.reduce((a, b) => a + b.failed, 0);
  const last = buckets[buckets.length - 1] || { completed: 0 };
  document.getElementById("chart-summary").textContent =
    `${done} completed in 30 min (${last.completed} this minute); ` +
    `failure rate ${attempts ? ((100 * failed) / attempts).toFixed(1) : "0.0"}% of ${attempts} attempts`;
}

function queueButton(q) {
  if (readOnly()) return "";
  const b = el("button", { "data-queue": q.name, "data-action": q.paused ? "resume" : "pause" },
    q.paused ? "Resume" : "Pause");
  return b;
}

function renderOverview(d) {
  for (const s of STATES) {
    const n = document.querySelector(`[data-state="${s}"]`);
    if (n) n.textContent = d.status.jobs[s];
  }
  document.getElementById("workers-active").textContent = d.status.workers.active;
  drawChart(d.throughput);
  setRows(document.querySelector("#workers tbody"), d.workers.map((w) => [
    w.id, w.host, `${w.heartbeat_age.toFixed(1)}s ago`,
    w.job_id ? jobLink(w.job_id) : (w.stopping ? "stopping" : "idle"),
    w.job_elapsed !== null ? `${w.job_elapsed.toFixed(1)}s` : "",
  ]), "no active workers", 5);
  setRows(document.querySelector("#queues tbody"), d.queues.map((q) => [
    q.paused ? el("span", {}, q.name + " ", el("span", { class: "badge ro" }, "paused")) : q.name,
    q.pending, q.processing, q.failed, q.dead, q.limit || "–", queueButton(q),
  ]), "no queues yet", 7);
  setRows(document.querySelector("#failures tbody"), d.recent_failures.map((f) => [
    f.at.slice(11, 19), jobLink(f.job_id), f.queue, el("span", { class: "err" }, f.error || f.event),
  ]), "no failures yet", 4);
}

async function refreshOverview() {
  const live = document.getElementById("live");
  try {
    renderOverview(await getJSON("/api/overview"));
    live.className = "badge";
    live.textContent = "live";
  } catch (e) {
    live.className = "badge error";
    live.textContent = "offline";
  }
}

// ---------------------------------------------------------------- actions
async function act(button) {
  const a = button.dataset.action;
  try {
    let r;
    if (a === "retry") {
      const id = button.dataset.job || button.closest("[data-job]").dataset.job;
      r = await post(`/api/jobs/${encodeURIComponent(id)}/retry`);
      flash(`retried ${id}: now pending`);
    } else if (a === "cancel") {
      const id = button.closest("[data-job]").dataset.job;
      r = await post(`/api/jobs/${encodeURIComponent(id)}/cancel`);
      flash(r.result === "cancelled" ? `cancelled ${id}` : `cancelling ${id} (its worker kills it)`);
    } else if (a === "retry-all") {
      r = await post("/api/dlq/retry", { all: true });
      flash(`retried ${r.retried} jobs`);
    } else if (a === "retry-group") {
      const code = button.dataset.exitCode === "" ? null : Number(button.dataset.exitCode);
      r = await post("/api/dlq/retry", { group: { exit_code: code, error: button.dataset.error } });
      flash(`retried ${r.retried} jobs`);
    } else if (a === "pause" || a === "resume") {
      r = await post(`/api/queues/${encodeURIComponent(button.dataset.queue)}/${a}`);
      flash(`${a === "pause" ? "paused" : "resumed"} ${button.dataset.queue}`);
      return refreshOverview();
    }
    if (document.body.dataset.page !== "overview") setTimeout(() => location.reload(), 600);
  } catch (e) {
    flash(e.message, true);
  }
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (b) { ev.preventDefault(); b.disabled = true; act(b).finally(() => { b.disabled = false; }); }
});

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "overview") {
    refreshOverview();
    setInterval(refreshOverview, REFRESH_MS);
  } else {
    document.getElementById("live").hidden = true;
  }
});
