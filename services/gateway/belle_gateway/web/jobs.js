// Jobs, datasets and models. The job list is polled every POLL_MS (status changes show without a
// reload); the selected job's events follow GET /v1/jobs/{id}/events?stream=true (SSE) live.
// jobs.html?job=ID opens that job (the lineage and pipelines pages link here); each model links to
// its lineage page.

import { api, request, sseEvents } from "./api.js";
import {
  clear, el, fmtTime, hideError, isId, lineage, lineageHref, pageParam, pipelineLink, renderHeader, requireKey, shortId,
  shortValue, showError, statusBadge,
} from "./ui.js";

const POLL_MS = 1500;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const $ = (id) => document.getElementById(id);

let selected = null; // job id shown in the detail panel
let follow = null; // AbortController of the selected job's event stream
const lastStatus = new Map(); // job id -> status seen, to notice jobs that just finished

let polling = false; // one list request at a time, however slow the server is

async function refreshJobs() {
  if (polling) return;
  polling = true;
  try {
    await loadJobs();
  } finally {
    polling = false;
  }
}

async function loadJobs() {
  const query = new URLSearchParams({ limit: "50" });
  if ($("job-type").value) query.set("type", $("job-type").value);
  if ($("job-status").value) query.set("status", $("job-status").value);
  let page;
  try {
    page = await api(`/v1/jobs?${query}`);
    hideError($("jobs-error"));
  } catch (err) {
    showError($("jobs-error"), err);
    return;
  }
  let finished = false;
  const body = clear($("jobs").querySelector("tbody"));
  for (const job of page.data) {
    const before = lastStatus.get(job.id);
    if (before && before !== job.status && TERMINAL.has(job.status)) finished = true;
    lastStatus.set(job.id, job.status);
    const cancel = !TERMINAL.has(job.status) && !job.cancel_requested
      ? el("button", { type: "button", className: "secondary small", onclick: (e) => { e.stopPropagation(); cancelJob(job.id); } }, "Cancel")
      : null;
    body.append(el("tr", {
      className: job.id === selected ? "selected clickable" : "clickable",
      dataset: { jobId: job.id, status: job.status },
      onclick: () => select(job.id),
    },
    el("td", { className: "mono", title: job.id }, shortId(job.id)),
    el("td", {}, job.type),
    el("td", {}, statusBadge(job.status), job.cancel_requested && !TERMINAL.has(job.status) ? " (cancelling)" : ""),
    el("td", {}, fmtTime(job.created_at)),
    el("td", {}, fmtTime(job.finished_at)),
    el("td", { className: "num" }, job.attempts),
    el("td", {}, cancel)));
    if (job.id === selected) showJob(job);
  }
  $("jobs-empty").hidden = page.data.length > 0;
  $("jobs-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  if (finished) {
    // A finished import or generation adds a dataset; training and quantizing add models.
    loadDatasets();
    loadModels();
  }
}

async function cancelJob(id) {
  try {
    await api(`/v1/jobs/${id}/cancel`, { method: "POST" });
  } catch (err) {
    showError($("jobs-error"), err);
  }
  refreshJobs();
}

function showJob(job) {
  $("detail-status").replaceChildren(statusBadge(job.status));
  $("detail-spec").textContent = JSON.stringify(job.spec, null, 2);
  $("detail-result").textContent = job.result ? JSON.stringify(job.result, null, 2) : "–";
  const pipeline = $("detail-pipeline");
  if (job.type === "pipeline") pipeline.replaceChildren("its steps: ", pipelineLink({ id: job.id, name: job.spec.name }));
  else if (job.parent_id) pipeline.replaceChildren("a step of ", pipelineLink({ id: job.parent_id }));
  else clear(pipeline);
  pipeline.hidden = !pipeline.firstChild;
  const errorBox = $("detail-error");
  if (job.error) showError(errorBox, `${job.error.code || "error"}: ${job.error.message || ""}`);
  else hideError(errorBox);
}

async function select(id) {
  if (follow) follow.abort();
  selected = id;
  document.querySelectorAll("#jobs tr.selected").forEach((row) => row.classList.remove("selected"));
  const row = document.querySelector(`#jobs tr[data-job-id="${CSS.escape(id)}"]`);
  if (row) row.classList.add("selected");
  $("job-detail").hidden = false;
  $("detail-id").textContent = id;
  clear($("events"));
  try {
    showJob(await api(`/v1/jobs/${id}`));
  } catch (err) {
    showError($("detail-error"), err);
  }
  followEvents(id);
}

async function followEvents(id) {
  const controller = new AbortController();
  follow = controller;
  const state = $("events-state");
  state.textContent = "following…";
  try {
    const response = await request(`/v1/jobs/${id}/events?stream=true`, { signal: controller.signal, accept: "text/event-stream" });
    for await (const event of sseEvents(response)) {
      if (event.event === "end") {
        state.textContent = `ended: ${JSON.parse(event.data).status}`;
        refreshJobs();
        return;
      }
      if (event.event !== "job.event") continue;
      const e = JSON.parse(event.data);
      const list = $("events");
      list.append(el("li", { className: `event level-${e.level}`, dataset: { kind: e.kind } },
        el("span", { className: "time" }, fmtTime(e.created_at)), " ",
        el("span", { className: "kind" }, e.kind), " ",
        el("span", { className: "message" }, e.message),
        e.data && Object.keys(e.data).length ? el("span", { className: "data muted" }, ` ${shortValue(e.data)}`) : null));
      list.scrollTop = list.scrollHeight;
    }
    state.textContent = "stream closed";
  } catch (err) {
    if (err.name !== "AbortError") state.textContent = `events: ${err.describe ? err.describe() : err.message}`;
  } finally {
    if (follow === controller) follow = null;
  }
}

async function loadDatasets() {
  const box = $("datasets");
  try {
    const page = await api("/v1/datasets?limit=100");
    hideError($("datasets-error"));
    clear(box);
    if (!page.data.length) box.append(el("p", { className: "muted" }, "No datasets yet: an import or datagen job records one."));
    for (const d of page.data) {
      const stats = el("dl", { className: "stats" });
      for (const [key, value] of Object.entries(d.stats || {})) {
        stats.append(el("dt", {}, key), el("dd", {}, shortValue(value)));
      }
      box.append(el("article", { className: "dataset", dataset: { datasetId: d.id } },
        el("h3", {}, el("span", { className: "dataset-name" }, d.name),
          el("span", { className: "muted small" }, ` · ${d.rows} rows · ${d.format} · ${fmtTime(d.created_at)}`)),
        stats));
    }
  } catch (err) {
    showError($("datasets-error"), err);
  }
}

async function loadModels() {
  try {
    const models = (await api("/v1/models")).data;
    hideError($("models-error"));
    const body = clear($("models").querySelector("tbody"));
    for (const m of models) {
      const details = m.details && Object.keys(m.details).length
        ? el("details", {}, el("summary", {}, m.details.architecture || "details"),
          el("pre", { className: "json" }, JSON.stringify(m.details, null, 2)))
        : "–";
      body.append(el("tr", { dataset: { model: m.id } },
        el("td", { className: "model-name" }, el("a", { href: lineageHref(m.id), title: "lineage" }, m.id)),
        el("td", {}, m.kind),
        el("td", { className: "lineage" }, lineage(models, m.id).join(" ← ")),
        el("td", {}, m.owned_by === "belle" ? "shared" : m.owned_by),
        el("td", {}, details)));
    }
  } catch (err) {
    showError($("models-error"), err);
  }
}

// The type filter lists the registered job types (one declaration each, server side), then pipelines.
async function loadJobTypes() {
  try {
    const types = await api("/v1/job_types");
    const select = $("job-type");
    const pipeline = select.querySelector("option:last-child");
    for (const type of types.data) {
      select.insertBefore(el("option", { value: type.name, title: type.description }, type.name), pipeline);
    }
  } catch (err) {
    showError($("jobs-error"), err);
  }
}

$("job-type").addEventListener("change", refreshJobs);
$("job-status").addEventListener("change", refreshJobs);
$("datasets-refresh").addEventListener("click", loadDatasets);
$("models-refresh").addEventListener("click", loadModels);

if (requireKey()) {
  renderHeader("jobs.html");
  loadJobTypes();
  refreshJobs();
  loadDatasets();
  loadModels();
  const asked = pageParam("job");
  // Only an id goes into the API's paths: a link is data, and "../" must not reach another route.
  if (asked && isId(asked)) select(asked).then(() => $("job-detail").scrollIntoView());
  else if (asked) {
    $("job-detail").hidden = false;
    showError($("detail-error"), `no job ${JSON.stringify(asked)}: a job id is a UUID`);
  }
  setInterval(() => {
    if (!document.hidden) refreshJobs();
  }, POLL_MS);
}
