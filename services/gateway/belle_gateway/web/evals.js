// Evaluation: the team's eval jobs, their scores per class side by side (GET /v1/evals/compare),
// and BELLE's single-question scoring against a judge (POST /v1/evals/judge).

import { api } from "./api.js";
import { clear, el, fmtScore, fmtTime, hideError, renderHeader, requireKey, shortId, showError, statusBadge } from "./ui.js";

const $ = (id) => document.getElementById(id);
const JUDGE_SETTINGS = "belle.judge"; // base URL, model, API and secret name: never a key
let templates = new Map();

async function loadEvals() {
  let page;
  try {
    page = await api("/v1/evals?limit=50");
    hideError($("evals-error"));
  } catch (err) {
    showError($("evals-error"), err);
    return [];
  }
  const body = clear($("evals").querySelector("tbody"));
  for (const e of page.data) {
    const done = e.status === "succeeded";
    const overall = Object.entries(e.overall || {}).map(([name, score]) => `${name}: ${fmtScore(score)}`).join(", ");
    body.append(el("tr", { dataset: { evalId: e.id } },
      el("td", {}, el("input", { type: "checkbox", className: "pick", value: e.id, disabled: !done,
                                 "aria-label": `compare eval ${shortId(e.id)}`, onchange: updateCompareButton })),
      el("td", { className: "mono", title: e.id }, shortId(e.id)),
      el("td", {}, statusBadge(e.status)),
      el("td", {}, e.mode),
      el("td", {}, e.eval_set ? `${e.eval_set.name || ""} (${e.eval_set.questions ?? "?"} questions)` : "–"),
      el("td", {}, overall || e.models.map((m) => m.name).join(", ")),
      el("td", {}, fmtTime(e.created_at))));
  }
  $("evals-empty").hidden = page.data.length > 0;
  return page.data;
}

function picked() {
  return [...document.querySelectorAll("#evals input.pick:checked")].map((box) => box.value);
}

function updateCompareButton() {
  $("compare").disabled = picked().length === 0;
}

async function compare(ids) {
  const section = $("comparison-section");
  try {
    const result = await api(`/v1/evals/compare?ids=${encodeURIComponent(ids.join(","))}`);
    hideError($("evals-error"));
    renderComparison(result);
    section.hidden = false;
  } catch (err) {
    showError($("evals-error"), err);
  }
}

function renderComparison(result) {
  const table = $("comparison");
  const several = new Set(result.columns.map((c) => c.eval_id)).size > 1;
  clear(table.querySelector("thead")).append(el("tr", {}, el("th", {}, "Class"),
    result.columns.map((c) => el("th", { title: `eval ${c.eval_id}, metric ${c.metric}` },
      el("div", { className: "model-name" }, c.model),
      el("div", { className: "muted small" }, several ? `eval ${shortId(c.eval_id)} · ${c.metric}` : c.metric)))));
  const body = clear(table.querySelector("tbody"));
  for (const row of result.rows) {
    const overall = row.class.startsWith("overall");
    body.append(el("tr", { className: overall ? "overall" : null, dataset: { class: row.class } },
      el("th", { scope: "row" }, row.class),
      row.scores.map((score, i) => {
        const bar = el("div", { className: "bar" });
        bar.style.width = `${Math.max(0, Math.min(1, score ?? 0)) * 100}%`; // CSSOM: allowed by the page's CSP
        return el("td", { className: "num score", title: `${row.counts[i]} judged` },
          el("span", { className: "value" }, fmtScore(score)), el("div", { className: "bar-track" }, bar));
      })));
  }
  const notes = clear($("comparison-notes"));
  for (const note of result.notes || []) notes.append(el("li", {}, note));
}

// ------------------------------------------------------------------------ single-question scoring

async function loadJudgeForm(evals) {
  try {
    const prompts = await api("/v1/evals/judge/prompts");
    templates = new Map(prompts.data.map((p) => [p.class, p.template]));
    const select = clear($("judge-class"));
    for (const name of templates.keys()) select.append(el("option", { value: name, text: name }));
    showTemplate();
  } catch (err) {
    showError($("judge-error"), err);
  }
  try {
    const secrets = (await api("/v1/secrets")).data;
    for (const s of secrets) $("judge-secret").append(el("option", { value: s.name, text: s.name }));
  } catch (err) {
    showError($("judge-error"), err);
  }
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(JUDGE_SETTINGS) || "null");
  } catch {
    saved = null;
  }
  if (!saved) {
    // Start from the judge of the team's latest judged evaluation, if there is one.
    const judged = evals.find((e) => e.status === "succeeded" && e.mode !== "reference");
    if (judged) {
      try {
        saved = (await api(`/v1/evals/${judged.id}`)).judge;
      } catch {
        saved = null;
      }
    }
  }
  if (saved) {
    $("judge-base-url").value = saved.base_url || "";
    $("judge-model").value = saved.model || "";
    $("judge-api").value = saved.api || "chat";
    if ([...$("judge-secret").options].some((o) => o.value === saved.api_key_secret)) {
      $("judge-secret").value = saved.api_key_secret;
    }
  }
}

function showTemplate() {
  $("judge-template").textContent = templates.get($("judge-class").value) || "";
}

function judgeSettings() {
  const judge = { base_url: $("judge-base-url").value.trim(), model: $("judge-model").value.trim(), api: $("judge-api").value };
  if ($("judge-secret").value) judge.api_key_secret = $("judge-secret").value;
  return judge;
}

async function score(event) {
  event.preventDefault();
  hideError($("judge-error"));
  $("judge-result").hidden = true;
  const judge = judgeSettings();
  localStorage.setItem(JUDGE_SETTINGS, JSON.stringify(judge));
  const body = { question: $("judge-question").value, class: $("judge-class").value, answer: $("judge-answer").value, judge };
  if ($("judge-reference").value.trim()) body.reference = $("judge-reference").value;
  const button = $("judge-submit");
  button.disabled = true;
  button.textContent = "Scoring…";
  try {
    const result = await api("/v1/evals/judge", { method: "POST", body });
    $("judge-score").textContent = result.parsed ? fmtScore(result.score) : "no score";
    $("judge-score").dataset.score = result.parsed ? String(result.score) : "";
    $("judge-parsed").textContent = result.parsed ? "(0 to 1)" : "(the reply states no score it can be read from)";
    $("judge-reason").textContent = result.reason;
    $("judge-reply").textContent = result.reply;
    $("judge-prompt").textContent = result.prompt;
    $("judge-usage").textContent = `${result.judge.model} at ${result.judge.base_url} · ${result.prompt_tokens} prompt + ${result.completion_tokens} completion tokens`;
    $("judge-result").hidden = false;
  } catch (err) {
    showError($("judge-error"), err);
  } finally {
    button.disabled = false;
    button.textContent = "Score";
  }
}

$("compare").addEventListener("click", () => compare(picked()));
$("evals-refresh").addEventListener("click", loadEvals);
$("judge-class").addEventListener("change", showTemplate);
$("judge-form").addEventListener("submit", score);

async function start() {
  renderHeader("evals.html");
  const evals = await loadEvals();
  // Show the newest finished evaluation's scores per class right away.
  const newest = evals.find((e) => e.status === "succeeded");
  if (newest) {
    const box = document.querySelector(`#evals input.pick[value="${CSS.escape(newest.id)}"]`);
    if (box) box.checked = true;
    updateCompareButton();
    compare([newest.id]);
  }
  loadJudgeForm(evals);
}

if (requireKey()) start();
