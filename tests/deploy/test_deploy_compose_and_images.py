"""docker-compose.yml against the compose specification (the Compose v2 binary, offline), its
required secrets, and every Dockerfile linted with hadolint plus the project's own rules."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from deploy_tools import ROOT, SERVICES, compose_binary, run, venv_binary

from belle_shared.queue import QUEUES

ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_FILE = ROOT / "docker-compose.yml"
WORKER_SERVICES = {"datagen": "datagen", "trainer": "train", "quantizer": "quantize", "evaluator": "eval"}


def example_values() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def secrets() -> list[str]:
    """The variables of .env.example's `secrets` block (each left empty there)."""
    block = ENV_EXAMPLE.read_text().split(" secrets\n", 1)[1].split("\n# ---", 1)[0]
    names = [line.split("=", 1)[0] for line in block.splitlines() if line and not line.startswith("#")]
    assert all(example_values()[name] == "" for name in names)
    return names


def compose(tmp_path: Path, env: dict[str, str], *args: str):
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    # A clean environment: only the env file configures the project; HOME keeps compose from
    # reading this machine's Docker configuration.
    return run([compose_binary(), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
                "--env-file", str(env_file), *args], env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})


def filled() -> dict[str, str]:
    values = example_values()
    for name in secrets():
        values[name] = "user:pass" if name == "FLOWER_BASIC_AUTH" else f"test-{name.lower().replace('_', '-')}"
    return values


def test_compose_file_is_valid_against_the_compose_specification(tmp_path):
    result = compose(tmp_path, filled(), "--profile", "gpu", "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_validation_rejects_what_the_specification_forbids(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    restart: unless-stopped\n", "    restart_policy: always\n", 1))
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in filled().items()))
    result = run([compose_binary(), "-f", str(broken), "--env-file", str(env_file), "config", "--quiet"],
                 env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_every_secret_is_required_never_defaulted(tmp_path):
    names = secrets()
    assert {"BELLE_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY"} <= set(names)
    text = COMPOSE_FILE.read_text()
    for name in names:
        uses = re.findall(r"\$\{" + name + r"(:?[-?+]?)[^}]*\}", text)
        assert uses and all(use == ":?" for use in uses), f"{name} must be used as ${{{name}:?...}} only"
        missing = {**filled(), name: ""}
        result = compose(tmp_path, missing, "--profile", "gpu", "config", "--quiet")
        assert result.returncode != 0 and name in result.stderr, name


def test_every_variable_the_compose_file_reads_is_documented(tmp_path):
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    documented = set(example_values())
    assert used <= documented, f"undocumented in .env.example: {sorted(used - documented)}"
    lines = ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            # Each variable, or the run of variables it belongs to, has a comment right above it.
            above = index - 1
            while above >= 0 and lines[above] and not lines[above].startswith("#"):
                above -= 1
            assert above >= 0 and lines[above].startswith("#"), f"{line}: no comment says what it is"


def test_services_queues_gpus_and_the_migration_step(tmp_path):
    result = compose(tmp_path, filled(), "--profile", "gpu", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"postgres", "redis", "minio", "migrate", "gateway", "flower", "vllm"} <= set(services)
    assert set(WORKER_SERVICES.values()) == set(QUEUES)
    for name in WORKER_SERVICES:
        assert services[name]["command"] is None or services[name]["command"] == [], name  # the image's CMD
        assert f"services/{name}/Dockerfile" == services[name]["build"]["dockerfile"]
    for name, gpu in {"trainer": True, "quantizer": True, "datagen": False, "evaluator": False, "gateway": False}.items():
        devices = ((services[name].get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices")
        assert bool(devices and "gpu" in devices[0]["capabilities"]) is gpu, name
    assert services["migrate"]["command"] == ["python", "-m", "belle_shared.db.migrate"]
    assert services["gateway"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "--appendonly" in services["redis"]["command"]
    assert services["gateway"]["environment"]["BELLE_ARTIFACT_ROOT"].startswith("s3://")
    without_profile = json.loads(compose(tmp_path, filled(), "config", "--format", "json").stdout)["services"]
    assert "vllm" not in without_profile and "gateway" in without_profile


def test_each_service_environment_is_valid_for_its_settings(tmp_path, monkeypatch):
    """The environment compose gives the gateway and the trainer builds their settings, chat proxy
    routes written as in .env.example included."""
    from belle_gateway.settings import GatewaySettings
    from belle_trainer.worker import TrainerSettings

    routes = '{"*": {"url": "http://vllm:8000/v1", "model": "belle-chat", "api_key": "k"}}'
    values = {**filled(), "BELLE_CHAT_PROXY_ROUTES": f"'{routes}'"}
    services = json.loads(compose(tmp_path, values, "config", "--format", "json").stdout)["services"]
    for name in list(os.environ):
        if name.startswith("BELLE_"):
            monkeypatch.delenv(name)
    for name, value in services["gateway"]["environment"].items():
        monkeypatch.setenv(name, value)
    gateway = GatewaySettings()
    assert gateway.environment == "production" and gateway.chat_engine == "off"
    assert gateway.chat_proxy_routes["*"].url == "http://vllm:8000/v1"
    assert gateway.resolved_database_url.startswith("postgresql+psycopg://belle:test-postgres-password@postgres")
    assert gateway.resolved_model_roots == [Path("/models")]
    for name, value in services["trainer"]["environment"].items():
        monkeypatch.setenv(name, value)
    assert TrainerSettings().artifact_root == "s3://belle-artifacts/artifacts"
    default = json.loads(compose(tmp_path, filled(), "config", "--format", "json").stdout)["services"]
    assert json.loads(default["gateway"]["environment"]["BELLE_CHAT_PROXY_ROUTES"]) == {}


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_passes_hadolint(service):
    result = run([venv_binary("hadolint"), "--no-color", f"services/{service}/Dockerfile"], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_installs_only_shared_and_its_service_as_non_root_with_a_health_check(service):
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    copies = re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M)
    assert set(copies) == {"constraints.txt", "shared/pyproject.toml", f"services/{service}/pyproject.toml",
                           "shared/", f"services/{service}/"}
    # The dependency layer comes before the code.
    assert text.index(f"COPY services/{service}/pyproject.toml") < text.index("pip install -c constraints.txt") \
        < text.index(f"COPY services/{service}/ ")
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and not users[-1].startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK .*\n?.*belle_shared\.healthcheck", text, flags=re.M)
    base = re.findall(r"^ARG \w+_IMAGE=(\S+)", text, flags=re.M)
    if service in ("trainer", "quantizer"):
        assert base and base[0].startswith("pytorch/pytorch:") and "cuda" in base[0]
    else:
        assert base and base[0].startswith("python:3.11-slim")


def test_gateway_image_has_no_torch():
    """The gateway's dependency closure (what its image installs) has no torch, transformers or peft."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    seen, todo = set(), [("belle-gateway", ""), ("belle-shared", "s3")]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        try:
            requirements = requires(name) or []
        except PackageNotFoundError:  # only needed on other platforms or Pythons (markers filter it)
            requirements = []
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo.extend((requirement.name.lower(), e) for e in (requirement.extras or {""}))
    seen = {name for name, _ in seen}
    assert not {"torch", "transformers", "peft", "deepspeed"} & seen
    assert "fastapi" in seen
