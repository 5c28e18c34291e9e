// Chat: pick a model, talk to it over POST /v1/chat/completions with stream=true, and show the
// tokens as they arrive. The Stop button aborts the request, which also frees the server's slot.

import { ApiError, api, apiErrorFrom, request, sseEvents } from "./api.js";
import { clear, el, hideError, lineage, renderHeader, requireKey, showError } from "./ui.js";

const $ = (id) => document.getElementById(id);
const conversation = $("conversation");
const errorBox = $("chat-error");
const promptBox = $("prompt");
const modelSelect = $("model");
const MODEL_CHOICE = "belle.chat.model";

let models = [];
let history = []; // {role, content} of this conversation, without the system prompt
let controller = null;

async function loadModels() {
  try {
    models = (await api("/v1/models")).data;
  } catch (err) {
    showError(errorBox, err);
    return;
  }
  clear(modelSelect);
  for (const m of models) {
    modelSelect.append(el("option", { value: m.id, text: `${m.id} · ${m.kind}` }));
  }
  // A link may name the model (`chat.html?model=NAME`, as `belle demo` prints); else the last one used.
  const asked = new URLSearchParams(location.search).get("model");
  const remembered = localStorage.getItem(MODEL_CHOICE);
  const chosen = [asked, remembered].find((name) => models.some((m) => m.id === name));
  if (chosen) modelSelect.value = chosen;
  showModel();
}

function showModel() {
  const model = models.find((m) => m.id === modelSelect.value);
  const lineageBox = clear($("model-lineage"));
  const details = $("model-details");
  details.textContent = "";
  if (!model) return;
  localStorage.setItem(MODEL_CHOICE, model.id);
  const chain = lineage(models, model.id);
  chain.forEach((name, i) => {
    if (i) lineageBox.append(el("span", { className: "arrow" }, " ← "));
    const known = models.find((m) => m.id === name);
    lineageBox.append(el("span", { className: "model-name" }, name, known ? ` (${known.kind})` : ""));
  });
  const d = model.details || {};
  const facts = [];
  if (d.architecture) facts.push(d.architecture);
  for (const key of ["parameters", "num_parameters", "context_length", "max_position_embeddings"]) {
    if (d[key] !== undefined && d[key] !== null) facts.push(`${key.replace(/_/g, " ")}: ${d[key]}`);
  }
  facts.push(model.owned_by === "belle" ? "shared base model" : `owned by ${model.owned_by}`);
  details.textContent = facts.join(" · ");
}

function bubble(role, text) {
  $("empty-hint").hidden = true;
  const body = el("div", { className: "text" }, text);
  const node = el("div", { className: `message ${role}`, dataset: { role } },
    el("div", { className: "who" }, role === "user" ? "You" : modelSelect.value), body);
  conversation.append(node);
  conversation.scrollTop = conversation.scrollHeight;
  return node;
}

function numberOr(id, fallback) {
  const raw = $(id).value.trim();
  if (raw === "") return fallback;
  const value = Number(raw);
  return Number.isFinite(value) ? value : fallback;
}

function requestBody() {
  const system = $("system").value.trim();
  const messages = system ? [{ role: "system", content: system }, ...history] : [...history];
  const body = {
    model: modelSelect.value, messages, stream: true, stream_options: { include_usage: true },
    temperature: numberOr("temperature", 1), top_p: numberOr("top-p", 1),
  };
  const maxTokens = numberOr("max-tokens", null);
  if (maxTokens !== null) body.max_tokens = Math.round(maxTokens);
  const stops = $("stop").value.split("\n").filter((s) => s !== "");
  if (stops.length) body.stop = stops;
  return body;
}

function setStreaming(on) {
  $("send").disabled = on;
  $("stop-button").disabled = !on;
  modelSelect.disabled = on;
}

async function send() {
  const text = promptBox.value.trim();
  if (!text || controller || !modelSelect.value) return;
  hideError(errorBox);
  history.push({ role: "user", content: text });
  const userNode = bubble("user", text);
  promptBox.value = "";
  const reply = bubble("assistant", "");
  reply.classList.add("streaming");
  const out = reply.querySelector(".text");
  const meta = el("div", { className: "meta" });
  reply.append(meta);
  let chunks = 0;
  let finish = null;
  let usage = null;
  let stopped = false;
  const started = performance.now();
  controller = new AbortController();
  setStreaming(true);
  try {
    const response = await request("/v1/chat/completions", { method: "POST", body: requestBody(), signal: controller.signal });
    for await (const event of sseEvents(response)) {
      if (event.data === "[DONE]") break;
      const chunk = JSON.parse(event.data);
      if (chunk.error) throw apiErrorFrom(0, chunk);
      if (chunk.usage) usage = chunk.usage;
      const choice = (chunk.choices || [])[0];
      if (!choice) continue;
      const piece = (choice.delta && choice.delta.content) || "";
      if (piece) {
        out.append(piece); // a text node per piece: appears at once, never parsed as HTML
        chunks += 1;
        reply.dataset.chunks = String(chunks);
        conversation.scrollTop = conversation.scrollHeight;
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  } catch (err) {
    if (err.name === "AbortError") stopped = true;
    else showError(errorBox, err instanceof ApiError ? err : new ApiError(0, err.message));
  } finally {
    controller = null;
    setStreaming(false);
    reply.classList.remove("streaming");
  }
  const content = out.textContent;
  if (content || stopped) {
    history.push({ role: "assistant", content });
    const seconds = (performance.now() - started) / 1000;
    const tokens = usage ? usage.completion_tokens : chunks;
    const parts = [`${tokens} tokens`, `${(tokens / Math.max(seconds, 1e-3)).toFixed(1)} tokens/s`];
    parts.push(stopped ? "stopped" : `finish: ${finish || "?"}`);
    meta.textContent = parts.join(" · ");
    reply.dataset.done = stopped ? "stopped" : "done";
  } else {
    // Nothing came back (an error before the first token): take the turn back so it can be edited.
    history.pop();
    userNode.remove();
    reply.remove();
    promptBox.value = text;
    if (!history.length) $("empty-hint").hidden = false;
  }
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
promptBox.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
$("stop-button").addEventListener("click", () => controller && controller.abort());
$("new-chat").addEventListener("click", () => {
  if (controller) controller.abort();
  history = [];
  conversation.querySelectorAll(".message").forEach((node) => node.remove());
  $("empty-hint").hidden = false;
  hideError(errorBox);
});
modelSelect.addEventListener("change", showModel);

if (requireKey()) {
  renderHeader("chat.html");
  loadModels();
}
