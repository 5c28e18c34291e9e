// A model's lineage (GET /v1/models/{model}/lineage): the chain from the model back to its base,
// each link's producing job, its dataset and the job that generated it, its eval scores (overall and
// per class), and the pipelines they ran in. lineage.html?model=NAME; the models table on the jobs
// page links here, and every job links to the jobs page.

import { api } from "./api.js";
import {
  clear, el, fmtScore, fmtTime, hideError, jobLink, lineageHref, pageParam, pipelineLink, renderHeader, requireKey,
  showError, statusBadge,
} from "./ui.js";

const $ = (id) => document.getElementById(id);

/** The model's name as one path segment: "/" and "." encoded too, so that no name (or crafted
 *  link) turns into another route ("../jobs"); the gateway decodes it back before routing. */
function modelPath(name) {
  return encodeURIComponent(name).replace(/\./g, "%2E");
}

async function loadPicker(current) {
  try {
    const models = (await api("/v1/models")).data;
    const pick = $("model-pick");
    for (const m of models) pick.append(el("option", { value: m.id, selected: m.id === current }, `${m.id} (${m.kind})`));
  } catch {
    // the picker is a convenience: the lineage itself shows any error
  }
}

async function show(name) {
  $("lineage-model").textContent = name;
  document.title = `BELLE · lineage of ${name}`;
  const chain = clear($("chain"));
  let lineage;
  try {
    lineage = await api(`/v1/models/${modelPath(name)}/lineage`);
    hideError($("lineage-error"));
  } catch (err) {
    showError($("lineage-error"), err);
    return;
  }
  const names = new Map(lineage.pipelines.map((p) => [p.id, p.name]));
  const came = $("lineage-pipelines");
  came.hidden = lineage.pipelines.length === 0;
  came.replaceChildren(lineage.pipelines.length === 1 ? "Made by pipeline " : "Made by pipelines ",
    ...lineage.pipelines.flatMap((p, i) => [i ? ", " : "", el("span", { className: "came-from", dataset: { pipelineId: p.id } },
      pipelineLink(p), " ", statusBadge(p.status))]));
  lineage.chain.forEach((node, index) => chain.append(renderNode(node, lineage.chain[index + 1], names)));
}

function renderNode(node, parent, pipelineNames) {
  const m = node.model;
  const facts = el("dl", { className: "stats" });
  const fact = (label, className, ...value) => facts.append(el("dt", {}, label), el("dd", { className }, ...value));
  fact("made from", "made-from", parent
    ? el("a", { href: lineageHref(parent.model.id) }, parent.model.id)
    : m.kind === "base" ? "– (a base model)" : "–");
  fact("made by", "made-by", node.made_by ? madeBy(node.made_by, pipelineNames) : "– (registered, not made by a job)");
  if (node.dataset) {
    const d = node.dataset;
    const dropped = Object.entries(d.dropped || {}).sort(([a], [b]) => a.localeCompare(b));
    const total = dropped.reduce((sum, [, n]) => sum + n, 0);
    fact(m.kind === "quantized" ? "calibrated on" : "trained on", "data",
      el("span", { className: "dataset-name" }, d.name), " · ",
      el("span", { className: "dataset-rows" }, `${d.rows} rows`), " · ",
      el("span", { className: "dataset-dropped" }, total
        ? `${total} dropped (${dropped.map(([why, n]) => `${why} ${n}`).join(", ")})` : "none dropped"));
    fact("data made by", "dataset-made-by", d.made_by ? madeBy(d.made_by, pipelineNames) : "– (not made by a job)");
    if (d.source_file_id) fact("from file", "mono small", d.source_file_id);
  }
  return el("li", { className: "card node", dataset: { model: m.id, kind: m.kind } },
    el("div", { className: "section-head" },
      el("h3", {}, el("a", { href: lineageHref(m.id), className: "model-name" }, m.id), " ",
        el("span", { className: "status kind" }, m.kind)),
      el("span", { className: "muted small" }, m.owned_by === "belle" ? "shared base model" : `owned by ${m.owned_by}`)),
    facts,
    renderEvals(node.evals));
}

function madeBy(job, pipelineNames) {
  return el("span", {}, jobLink(job),
    job.finished_at ? el("span", { className: "muted small" }, ` ended ${fmtTime(job.finished_at)}`) : null,
    job.pipeline_id ? [" · step ", el("span", { className: "step-name" }, job.pipeline_step || "?"), " of ",
      pipelineLink({ id: job.pipeline_id, name: pipelineNames.get(job.pipeline_id) })] : null);
}

/** One table per eval job: a row per class (overall first), a column per metric. */
function renderEvals(evals) {
  const box = el("div", { className: "evals" });
  if (!evals.length) return el("p", { className: "evals muted small" }, "Not evaluated yet.");
  for (const e of evals) {
    const rows = [["overall", e.overall], ...Object.entries(e.classes).sort(([a], [b]) => a.localeCompare(b))];
    const metrics = [...new Set(rows.flatMap(([, scores]) => Object.keys(scores)))].sort();
    box.append(el("div", { className: "eval", dataset: { evalId: e.job_id } },
      el("h4", {}, "Eval ", jobLink({ id: e.job_id, type: "" }),
        e.finished_at ? el("span", { className: "muted small" }, ` ended ${fmtTime(e.finished_at)}`) : null),
      el("table", { className: "table scores" },
        el("thead", {}, el("tr", {}, el("th", {}, "class"), metrics.map((name) => el("th", { className: "num" }, name)))),
        el("tbody", {}, rows.map(([cls, scores]) => el("tr", { className: cls === "overall" ? "overall" : null,
                                                              dataset: { class: cls } },
          el("th", {}, cls),
          metrics.map((name) => el("td", { className: "num", dataset: { metric: name } }, fmtScore(scores[name])))))))));
  }
  return box;
}

if (requireKey()) {
  renderHeader("jobs.html");
  const name = pageParam("model");
  loadPicker(name);
  $("model-pick").addEventListener("change", (event) => {
    if (event.target.value) location.assign(lineageHref(event.target.value));
  });
  if (name) show(name);
  else showError($("lineage-error"), "choose a model: lineage.html?model=NAME (or the Models table on the jobs page)");
}
