// Pipelines: the team's pipelines (GET /v1/pipelines), each with its steps, polled every POLL_MS
// so step statuses change without a reload; Retry and Cancel call the API. pipelines.html?pipeline=ID
// brings one pipeline to the top (the lineage page links here), fetched by id if it is not listed.
//
// A card is built once per pipeline and updated in place (its buttons are never replaced under the
// pointer); a card whose pipeline did not change since the last poll is left alone.

import { api } from "./api.js";
import {
  clear, el, fmtTime, hideError, isId, jobLink, pageParam, renderHeader, requireKey, shortId, showError, statusBadge,
} from "./ui.js";

const POLL_MS = 1500;
const LIST_LIMIT = 50;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const $ = (id) => document.getElementById(id);

const cards = new Map(); // pipeline id -> card element
let focus = null; // the pipeline asked for in the address
let polling = false; // one refresh at a time, however slow the server is

async function refresh() {
  if (polling) return;
  polling = true;
  try {
    await load();
  } finally {
    polling = false;
  }
}

async function load() {
  let pipelines;
  try {
    pipelines = (await api(`/v1/pipelines?limit=${LIST_LIMIT}`)).data;
    hideError($("pipelines-error"));
  } catch (err) {
    showError($("pipelines-error"), err);
    return;
  }
  if (focus && !pipelines.some((p) => p.id === focus)) {
    try {
      pipelines = [await api(`/v1/pipelines/${focus}`), ...pipelines];
    } catch (err) {
      if (err.status !== 404) return showError($("pipelines-error"), err);
      showError($("focus-error"), err); // another team's, or none: show the list without it
      focus = null;
    }
  }
  const wanted = $("pipeline-status").value;
  const shown = pipelines
    .filter((p) => !wanted || p.status === wanted)
    .sort((a, b) => (b.id === focus) - (a.id === focus)); // the asked-for one first, else newest first
  const box = $("pipelines");
  shown.forEach((p, index) => {
    let card = cards.get(p.id);
    if (!card) {
      card = newCard(p.id);
      cards.set(p.id, card);
    }
    const state = JSON.stringify(p);
    if (card.state !== state) {
      card.state = state;
      update(card, p);
    }
    if (box.children[index] !== card) box.insertBefore(card, box.children[index] || null);
  });
  const keep = new Set(shown.map((p) => p.id));
  for (const [id, card] of cards) {
    if (!keep.has(id)) {
      card.remove();
      cards.delete(id);
    }
  }
  $("pipelines-empty").hidden = shown.length > 0;
  $("pipelines-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function newCard(id) {
  const parts = {
    name: el("span", { className: "pipeline-name" }),
    status: el("span", { className: "pipeline-status" }),
    progress: el("span", { className: "progress muted small" }),
    times: el("span", { className: "muted small" }),
    retry: el("button", { type: "button", className: "retry small", onclick: () => act(id, "retry", parts) }, "Retry"),
    cancel: el("button", { type: "button", className: "cancel danger small", onclick: () => act(id, "cancel", parts) },
      "Cancel"),
    error: el("p", { className: "error pipeline-error", role: "alert", hidden: true }),
    actionError: el("p", { className: "error action-error", role: "alert", hidden: true }),
    steps: el("tbody"),
  };
  const card = el("article", { className: "pipeline", dataset: { pipelineId: id } },
    el("div", { className: "section-head" },
      el("h3", {}, parts.name, " ", el("a", { href: `jobs.html?job=${id}`, className: "mono small", title: "its events" },
        shortId(id)), " ", parts.status, " ", parts.progress),
      el("div", { className: "filters" }, parts.times, parts.retry, parts.cancel)),
    parts.error, parts.actionError,
    el("div", { className: "scroll" }, el("table", { className: "table steps" },
      el("thead", {}, el("tr", {}, ["Step", "Type", "Needs", "Status", "Why / error", "Job", "Started", "Finished"]
        .map((title) => el("th", {}, title)))),
      parts.steps)));
  card.parts = parts;
  return card;
}

function update(card, p) {
  const { parts } = card;
  card.dataset.status = p.status;
  card.classList.toggle("selected", p.id === focus);
  parts.name.textContent = p.name || "pipeline";
  parts.status.replaceChildren(statusBadge(p.status), p.cancel_requested && !TERMINAL.has(p.status) ? " (cancelling)" : "");
  const done = p.steps.filter((s) => s.status === "succeeded").length;
  parts.progress.textContent = `${done}/${p.steps.length} steps done`;
  parts.times.textContent = `created ${fmtTime(p.created_at)}` + (p.finished_at ? ` · ended ${fmtTime(p.finished_at)}` : "");
  // The API refuses a retry unless the pipeline failed or was cancelled, and a cancel once it ended.
  parts.retry.hidden = !(p.status === "failed" || p.status === "cancelled");
  parts.cancel.hidden = TERMINAL.has(p.status) || p.cancel_requested;
  parts.retry.disabled = parts.cancel.disabled = false;
  if (p.error) showError(parts.error, p.error.message || p.error.code || "failed");
  else hideError(parts.error);
  clear(parts.steps);
  for (const s of p.steps) {
    const why = s.error
      ? el("span", { className: "step-error" }, `${s.error.code || "error"}: ${s.error.message || ""}`)
      : el("span", { className: "reason muted" }, s.reason || "");
    const jobs = s.job_id
      ? [jobLink({ id: s.job_id }), s.job_ids.length > 1 ? el("span", { className: "attempts muted small" },
        ` (run ${s.job_ids.length} times)`) : null]
      : "–";
    parts.steps.append(el("tr", { dataset: { step: s.name, status: s.status } },
      el("td", { className: "step-name" }, s.name),
      el("td", {}, s.type || "–"),
      el("td", {}, s.needs.length ? s.needs.join(", ") : "–"),
      el("td", {}, statusBadge(s.status)),
      el("td", { className: "why" }, why),
      el("td", { className: "step-job" }, jobs),
      el("td", {}, fmtTime(s.started_at)),
      el("td", {}, fmtTime(s.finished_at))));
  }
}

async function act(id, action, parts) {
  parts.retry.disabled = parts.cancel.disabled = true;
  try {
    const p = await api(`/v1/pipelines/${id}/${action}`, { method: "POST" });
    hideError(parts.actionError);
    const card = cards.get(id);
    if (card) {
      card.state = JSON.stringify(p);
      update(card, p);
    }
  } catch (err) {
    showError(parts.actionError, err);
    parts.retry.disabled = parts.cancel.disabled = false;
  }
  refresh();
}

$("pipeline-status").addEventListener("change", refresh);

if (requireKey()) {
  renderHeader("pipelines.html");
  const asked = pageParam("pipeline");
  if (asked && isId(asked)) focus = asked.toLowerCase();
  else if (asked) showError($("focus-error"), `no pipeline ${JSON.stringify(asked)}: a pipeline id is a UUID`);
  refresh().then(() => {
    if (focus && cards.get(focus)) cards.get(focus).scrollIntoView();
  });
  setInterval(() => {
    if (!document.hidden) refresh();
  }, POLL_MS);
}
