// Sign-in: check the key with GET /v1/models, keep it, go on to the page asked for (or chat).

import { ApiError, getKey, request, saveKey } from "./api.js";
import { hideError, showError } from "./ui.js";

const params = new URLSearchParams(location.search);
// Only a page of this site: never an address someone put in the link.
const wanted = params.get("next") || "";
const next = /^[a-z0-9_-]+\.html(\?[^#]*)?$/.test(wanted) && !wanted.startsWith("index.html") ? wanted : "chat.html";

const form = document.getElementById("login-form");
const input = document.getElementById("api-key");
const errorBox = document.getElementById("login-error");

if (params.get("expired")) document.getElementById("expired").hidden = false;
if (getKey() && !params.get("expired")) location.replace(next);

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  hideError(errorBox);
  const key = input.value.trim();
  if (!key) return;
  const button = document.getElementById("login-button");
  button.disabled = true;
  try {
    await request("/v1/models", { key, login: true });
    saveKey(key, document.getElementById("remember").checked);
    location.assign(next);
  } catch (err) {
    const refused = err instanceof ApiError && err.status === 401;
    showError(errorBox, refused ? new ApiError(401, `This key was refused: ${err.message}.`) : err);
    input.select();
  } finally {
    button.disabled = false;
  }
});
