"""A small HTTP client for the gateway, used by the CLI commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

TERMINAL = {"succeeded", "failed", "cancelled"}


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BELLE_", extra="ignore")

    api_url: str = Field("http://127.0.0.1:8000", description="Gateway URL.")
    api_key: str | None = Field(None, description="Team API key (from `belle admin create-team`).")


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(f"{status}: {message}" + (f" (param: {param})" if param else ""))
        self.status = status
        self.message = message
        self.param = param


class Client:
    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 60.0):
        if not api_key:
            raise APIError(401, "no API key: set BELLE_API_KEY or pass --api-key")
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                 headers={"Authorization": f"Bearer {api_key}"})

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise APIError(response.status_code, error.get("message", response.text), error.get("param"))
            except (ValueError, KeyError, TypeError):
                raise APIError(response.status_code, response.text[:500]) from None
        return response.json()

    def upload(self, path: Path, purpose: str = "fine-tune") -> dict:
        with open(path, "rb") as f:
            return self._check(self.http.post("/v1/files", files={"file": (path.name, f)}, data={"purpose": purpose}))

    def submit(self, spec: dict) -> dict:
        return self._check(self.http.post("/v1/jobs", json=spec))

    def job(self, job_id: str) -> dict:
        return self._check(self.http.get(f"/v1/jobs/{job_id}"))

    def jobs(self, **params) -> dict:
        return self._check(self.http.get("/v1/jobs", params={k: v for k, v in params.items() if v is not None}))

    def events(self, job_id: str, after: int = 0, limit: int = 100) -> dict:
        return self._check(self.http.get(f"/v1/jobs/{job_id}/events", params={"after": after, "limit": limit}))

    def cancel(self, job_id: str) -> dict:
        return self._check(self.http.post(f"/v1/jobs/{job_id}/cancel"))

    def submit_pipeline(self, spec: dict) -> dict:
        return self._check(self.http.post("/v1/pipelines", json=spec))

    def pipeline(self, pipeline_id: str) -> dict:
        return self._check(self.http.get(f"/v1/pipelines/{pipeline_id}"))

    def pipelines(self, **params) -> dict:
        return self._check(self.http.get("/v1/pipelines", params={k: v for k, v in params.items() if v is not None}))

    def retry_pipeline(self, pipeline_id: str) -> dict:
        return self._check(self.http.post(f"/v1/pipelines/{pipeline_id}/retry"))

    def cancel_pipeline(self, pipeline_id: str) -> dict:
        return self._check(self.http.post(f"/v1/pipelines/{pipeline_id}/cancel"))

    def evaluation(self, eval_id: str) -> dict:
        return self._check(self.http.get(f"/v1/evals/{eval_id}"))

    def lineage(self, ref: str) -> dict:
        return self._check(self.http.get(f"/v1/models/{ref}/lineage"))

    def files(self) -> dict:
        return self._check(self.http.get("/v1/files"))

    def dataset(self, dataset_id: str) -> dict:
        return self._check(self.http.get(f"/v1/datasets/{dataset_id}"))

    def datasets(self) -> dict:
        return self._check(self.http.get("/v1/datasets"))

    def download_dataset(self, dataset_id: str, out, *, format: str = "conversations") -> None:
        """Stream a dataset's JSONL rows into the binary file ``out``."""
        with self.http.stream("GET", f"/v1/datasets/{dataset_id}/content", params={"format": format}) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            for chunk in response.iter_bytes():
                out.write(chunk)

    def models(self) -> dict:
        return self._check(self.http.get("/v1/models"))

    def model(self, ref: str) -> dict:
        return self._check(self.http.get(f"/v1/models/{ref}"))

    def register_model(self, path: str, name: str) -> dict:
        return self._check(self.http.post("/v1/models", json={"name": name, "path": path}))

    def delete_model(self, ref: str) -> dict:
        return self._check(self.http.delete(f"/v1/models/{ref}"))

    def set_secret(self, name: str, value: str) -> dict:
        return self._check(self.http.put(f"/v1/secrets/{name}", json={"value": value}))

    def secrets(self) -> dict:
        return self._check(self.http.get("/v1/secrets"))

    def delete_secret(self, name: str) -> None:
        response = self.http.delete(f"/v1/secrets/{name}")
        if response.status_code != 204:
            self._check(response)

    def follow(self, job_id: str, after: int = 0) -> Iterator[dict]:
        """Server-sent events of a job until it ends (yields event objects)."""
        with self.http.stream("GET", f"/v1/jobs/{job_id}/events", params={"stream": "true", "after": after},
                              timeout=httpx.Timeout(60.0, read=None)) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            name = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    payload = json.loads(line[6:])
                    if name == "end":
                        return
                    yield payload
