"""What a multi-stage Dockerfile builds for given build arguments, read statically (no Docker engine
here): the stages the target goes through, its base image and the image settings it ends with. Enough
of the Dockerfile syntax for deploy/Dockerfile: continuation lines, global and stage ARGs, ${VAR}
in FROM and COPY, `FROM <stage>`, `COPY --from=<stage>`, ENV K=V lists, exec-form CMD and HEALTHCHECK."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Image:
    """The image a build produces: `stages` from the target back to the one on an external `base`;
    `built_from` every stage it needed (those copied from included)."""

    base: str
    stages: list[str]
    built_from: list[Stage]
    env: dict[str, str]
    cmd: list[str] | None
    healthcheck: str | None
    user: str | None
    expose: list[str]

    def instructions(self, keyword: str) -> list[str]:
        return [args for stage in self.built_from for kw, args in stage.instructions if kw == keyword]


def _instructions(text: str) -> list[tuple[str, str]]:
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    result = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def _substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def _env_pairs(args: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in args.split())


def parse(path: Path, build_args: dict[str, str]) -> tuple[list[Stage], dict[str, str]]:
    """The stages of a Dockerfile, FROM lines resolved with the global ARGs and `build_args`."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in _instructions(path.read_text()):
        if keyword == "ARG" and not stages:
            name, _, default = args.partition("=")
            global_args[name] = build_args.get(name, default)
        elif keyword == "FROM":
            words = _substitute(args, global_args).split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append(Stage(name, words[0]))
        else:
            stages[-1].instructions.append((keyword, args))
    return stages, global_args


def resolve(path: Path, **build_args: str) -> Image:
    """What building the last stage of `path` with `build_args` produces."""
    stages, global_args = parse(path, build_args)
    by_name = {stage.name: stage for stage in stages if stage.name}
    chain = [stages[-1]]
    while chain[-1].base in by_name:
        chain.append(by_name[chain[-1].base])
    needed = list(chain)
    for stage in chain:
        for keyword, args in stage.instructions:
            source = re.match(r"--from=(\S+)", args) if keyword == "COPY" else None
            if source and source.group(1) in by_name:
                needed.append(by_name[source.group(1)])
    built_from = []
    for stage in reversed(needed):
        # A stage's ARG <name> (no default) takes the global value; then ${name} means that value.
        values = {}
        resolved = []
        for keyword, args in stage.instructions:
            if keyword == "ARG":
                name, _, default = args.partition("=")
                values[name] = build_args.get(name, global_args.get(name, default))
                continue
            resolved.append((keyword, _substitute(args, values) if keyword in ("COPY", "ENV") else args))
        built_from.append(Stage(stage.name, stage.base, resolved))
    env: dict[str, str] = {}
    cmd = healthcheck = user = None
    expose: list[str] = []
    for stage in reversed(chain):
        for keyword, args in next(s for s in built_from if s.name == stage.name and s.base == stage.base).instructions:
            if keyword == "ENV":
                env.update(_env_pairs(args))
            elif keyword == "CMD":
                cmd = json.loads(args)
            elif keyword == "HEALTHCHECK":
                healthcheck = args
            elif keyword == "USER":
                user = args
            elif keyword == "EXPOSE":
                expose.extend(args.split())
    return Image(base=chain[-1].base, stages=[s.name or s.base for s in chain], built_from=built_from,
                 env=env, cmd=cmd, healthcheck=healthcheck, user=user, expose=expose)
