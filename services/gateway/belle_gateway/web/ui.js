// DOM helpers shared by the pages. Data goes into the page as text (textContent, text nodes,
// attributes set one by one), never as HTML.

import { clearKey, getKey } from "./api.js";

/** el("td", {className: "num", dataset: {id}}, "text", childNode) */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

/** Whether a key is stored; without one, off to the sign-in page (coming back here afterwards)
 *  and the page starts nothing. */
export function requireKey() {
  if (getKey()) return true;
  const next = encodeURIComponent(location.pathname.split("/").pop() + location.search);
  location.replace(`index.html?next=${next}`);
  return false;
}

const PAGES = [
  ["chat.html", "Chat"],
  ["jobs.html", "Jobs"],
  ["pipelines.html", "Pipelines"],
  ["evals.html", "Evaluation"],
];

/** The top bar: the pages and a sign-out button. */
export function renderHeader(active) {
  const nav = el("nav", { className: "pages" },
    PAGES.map(([href, label]) => el("a", { href, className: href === active ? "active" : null,
                                              "aria-current": href === active ? "page" : null }, label)));
  const signOut = el("button", {
    type: "button", id: "sign-out", className: "secondary",
    onclick: () => { clearKey(); location.assign("index.html"); },
  }, "Sign out");
  document.getElementById("top").replaceChildren(el("span", { className: "brand" }, "BELLE"), nav, signOut);
}

export function showError(node, error) {
  node.textContent = error && error.describe ? error.describe() : String(error && error.message ? error.message : error);
  node.hidden = false;
}

export function hideError(node) {
  node.textContent = "";
  node.hidden = true;
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function fmtScore(value) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(3);
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

/** The parent chain of a model in a /v1/models list: [model, parent, grandparent, ...] names.
 *  A parent that is not in the list (another team's, or removed) ends the chain with its name. */
export function lineage(models, name) {
  const byName = new Map(models.map((m) => [m.id, m]));
  const chain = [];
  let current = name;
  while (current && !chain.includes(current)) {
    chain.push(current);
    const model = byName.get(current);
    current = model ? model.parent : null;
  }
  return chain;
}

/** Whether a value (a query parameter, say) is a UUID: only ids go into the API's paths, so that
 *  a crafted link cannot send the page's key to another route ("../"). */
export function isId(value) {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(String(value));
}

/** A query parameter of this page's address, or null. */
export function pageParam(name) {
  return new URLSearchParams(location.search).get(name);
}

/** The lineage page of a model. */
export function lineageHref(name) {
  return `lineage.html?model=${encodeURIComponent(name)}`;
}

/** A job on the jobs page, as "TYPE 1a2b3c4d" and its status (when known). */
export function jobLink(job) {
  return el("span", { className: "job-link" },
    el("a", { href: `jobs.html?job=${encodeURIComponent(job.id)}`, title: job.id, dataset: { jobId: job.id } },
      job.type ? `${job.type} ` : "", el("span", { className: "mono" }, shortId(job.id))),
    job.status ? [" ", statusBadge(job.status)] : null);
}

/** A pipeline on the pipelines page, by name (or its short id). */
export function pipelineLink(pipeline) {
  return el("a", { href: `pipelines.html?pipeline=${encodeURIComponent(pipeline.id)}`, title: pipeline.id,
                   className: "pipeline-link", dataset: { pipelineId: pipeline.id } },
  pipeline.name || `pipeline ${shortId(pipeline.id)}`);
}

export function statusBadge(status) {
  return el("span", { className: `status status-${status}`, dataset: { status } }, status);
}

/** A value of a statistics object as short text (numbers rounded, objects as compact JSON). */
export function shortValue(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(3);
  if (value === null || value === undefined) return "–";
  if (typeof value === "object") {
    const text = JSON.stringify(value);
    return text.length > 160 ? `${text.slice(0, 157)}...` : text;
  }
  return String(value);
}
