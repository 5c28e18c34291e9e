"""docker-compose.yml against the compose specification (the Compose v2 binary, offline), its
required secrets, and the one Dockerfile template (deploy/Dockerfile) linted with hadolint plus the
project's own rules for each service's image, read statically (dockerfile_stages)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from deploy_tools import ROOT, SERVICES, compose_binary, run, venv_binary
from dockerfile_stages import Image, resolve

from belle_shared.job_types import queues as registered_queues

ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
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
    assert set(WORKER_SERVICES.values()) == set(registered_queues())
    for name in WORKER_SERVICES:
        assert services[name]["command"] is None or services[name]["command"] == [], name  # the image's CMD
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


def test_every_image_is_built_from_the_one_template_with_its_service(tmp_path):
    """Compose builds each BELLE image (migrate uses the gateway's) from deploy/Dockerfile with the
    service as SERVICE and nothing else; no service keeps a Dockerfile of its own."""
    services = json.loads(compose(tmp_path, filled(), "--profile", "gpu", "config", "--format", "json").stdout)["services"]
    built = {name: service for name, service in services.items() if "build" in service}
    assert set(built) == {*SERVICES, "migrate"}
    for name, service in built.items():
        image_service = "gateway" if name == "migrate" else name
        assert service["build"]["context"] == str(ROOT)
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert service["build"]["args"] == {"SERVICE": image_service}, name
        assert service["image"].rsplit(":", 1)[0].endswith(f"-{image_service}"), name
    assert not list((ROOT / "services").glob("*/Dockerfile"))


def test_the_template_passes_hadolint():
    result = run([venv_binary("hadolint"), "--no-color", "deploy/Dockerfile"], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def documented_differences() -> dict[str, dict[str, str]]:
    """The table at the top of the template: each service's base stage and extras."""
    rows = re.findall(r"^#   ([a-z]+)\s+.+?\((\w+)\)\s+(\S+)\s", DOCKERFILE.read_text(), flags=re.M)
    return {service: {"stage": stage, "extras": "" if extras == "-" else extras} for service, stage, extras in rows}


def pip_installs(image: Image, service: str) -> list[list[str]]:
    """The `pip install` command lines of the image's RUN steps, run by a shell with SERVICE set and
    every command stubbed: the shell logic of the template itself, without installing anything."""
    stubs = "pip() { echo \"pip $*\"; }; mkdir() { :; }; groupadd() { :; }; useradd() { :; }; python() { :; }"
    lines = []
    for step in image.instructions("RUN"):
        result = subprocess.run(["sh", "-ec", f"{stubs}\n{step}"], capture_output=True, text=True,
                                env={"SERVICE": service, "PATH": "/usr/bin:/bin"}, timeout=10)
        assert result.returncode == 0, result.stderr
        lines += [line.split()[2:] for line in result.stdout.splitlines() if line.startswith("pip install")]
    return lines


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_installs_only_shared_and_its_service_as_non_root_with_a_health_check(service):
    image = resolve(DOCKERFILE, SERVICE=service)
    copies = {args.split()[0] for args in image.instructions("COPY") if not args.startswith("--from")}
    assert copies == {"constraints.txt", "shared/pyproject.toml", f"services/{service}/pyproject.toml",
                      "shared/", f"services/{service}/"}
    # The dependency layer comes before the code.
    steps = [f"{kw} {args}" for stage in image.built_from for kw, args in stage.instructions if kw in ("COPY", "RUN")]
    metadata = steps.index(f"COPY services/{service}/pyproject.toml services/{service}/")
    resolve_step = next(i for i, step in enumerate(steps) if "pip install -c constraints.txt" in step)
    code = steps.index(f"COPY services/{service}/ services/{service}/")
    assert metadata < resolve_step < code
    installs = pip_installs(image, service)
    assert installs[0][:3] == ["-c", "constraints.txt", "./shared[s3]"]
    assert installs[-1] == ["--no-deps", "--force-reinstall", "./shared", f"./services/{service}"]
    assert image.user and not image.user.startswith(("root", "0"))
    assert "belle_shared.healthcheck" in image.healthcheck
    # The image starts the service's own entry point.
    scripts = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())["project"]["scripts"]
    assert image.cmd and image.cmd[0] in scripts
    if service in ("trainer", "quantizer"):
        assert image.base.startswith("pytorch/pytorch:") and "cuda" in image.base and "devel" in image.base
    else:
        assert image.base.startswith("python:3.11-slim")


@pytest.mark.parametrize("service", SERVICES)
def test_what_differs_per_service_is_in_the_table_and_its_own_stage(service):
    """The table at the top of the template says each service's base stage and extras, and the
    build does that; the service's own stage only sets settings (no install, no copy)."""
    image = resolve(DOCKERFILE, SERVICE=service)
    row = documented_differences()[service]
    assert image.stages[1:] == [service, row["stage"]]
    extras = f"[{row['extras']}]" if row["extras"] else ""
    assert pip_installs(image, service)[0][-1] == f"./services/{service}{extras}"
    (own,) = [stage for stage in image.built_from if stage.name == service]
    assert {keyword for keyword, _ in own.instructions} <= {"ENV", "EXPOSE", "HEALTHCHECK", "CMD"}
    if service == "gateway":
        assert image.expose == ["8000"] and "--http" in image.healthcheck
        assert image.env["BELLE_CHAT_ENGINE"] == "off"
    else:
        assert image.expose == [] and "--broker" in image.healthcheck


def test_the_template_table_names_every_service():
    assert set(documented_differences()) == set(SERVICES)
    assert documented_differences()["trainer"]["extras"] == "kubernetes"  # the multi-node launcher's client


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
