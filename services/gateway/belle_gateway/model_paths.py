"""Which model folders and files a team may register or import: under the operator's model roots, or
in the team's own part of the artifact store; never elsewhere (a path is a path on the server)."""

from __future__ import annotations

from pathlib import Path

from belle_gateway.errors import APIError
from belle_shared.model_sources import ModelSourceError, resolve_under_roots


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def resolve_model_path(raw: str, *, roots: list[Path], team_prefix: str, store_root: str) -> str:
    """The folder a registration may record, or APIError(400, param="path").

    Local paths are resolved (symlinks and `..` included) before they are compared with the roots,
    so a link inside a root cannot point a team at a folder outside it. ``team_prefix`` is the
    team's own part of the artifact store (a local folder or a URL) and the only part of
    ``store_root`` a team may name, even where an operator's model root contains the store.
    """
    candidate = raw[len("file://"):] if raw.startswith("file://") else raw
    if "://" in candidate:
        # A remote artifact store: only the team's own prefix, and no climbing out of it.
        if ".." in candidate.split("/") or not _within(candidate.rstrip("/"), team_prefix):
            raise APIError(400, f"path: {raw!r} is not in this team's part of the artifact store ({team_prefix})",
                           param="path", code="path_not_allowed")
        return candidate.rstrip("/")
    try:
        resolved = str(resolve_under_roots(candidate, roots))
    except ModelSourceError as exc:
        raise APIError(400, f"path: {exc}", param="path", code="invalid_path") from None
    allowed = [str(root) for root in roots]
    if "://" not in team_prefix:
        own = str(Path(team_prefix).resolve())
        if _within(resolved, str(Path(store_root).resolve())) and not _within(resolved, own):
            raise APIError(400, f"path: {raw!r} is in the artifact store but not in this team's part of it",
                           param="path", code="path_not_allowed")
        allowed.append(own)
    if not any(_within(resolved, root) for root in allowed):
        raise APIError(400, f"path: {raw!r} is outside the folders models may be registered from "
                       f"({', '.join(str(r) for r in roots)}, or the team's artifacts)", param="path",
                       code="path_not_allowed")
    return resolved
