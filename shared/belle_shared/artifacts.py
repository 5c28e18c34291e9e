"""Artifact store over fsspec: a local folder by default, ``s3://bucket/prefix`` (or any fsspec URL)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from typing import IO

import fsspec


@dataclass(frozen=True)
class StoredObject:
    uri: str
    sha256: str
    bytes: int


class ArtifactStore:
    def __init__(self, root: str):
        self.root_url = root
        self.fs, self.root = fsspec.core.url_to_fs(root)
        self._local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        if self._local:
            os.makedirs(self.root, exist_ok=True)

    def uri(self, key: str) -> str:
        path = f"{self.root.rstrip('/')}/{key.lstrip('/')}"
        return path if self._local else self.fs.unstrip_protocol(path)

    def _path(self, uri: str) -> str:
        return self.fs._strip_protocol(uri)

    def put_file(self, local_path: str | os.PathLike, key: str) -> StoredObject:
        sha, size = sha256_file(local_path)
        target = self._path(self.uri(key))
        if self._local:
            # Write beside the target, then rename: a reader never sees half a file.
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            self.fs.put_file(os.fspath(local_path), tmp)
            os.replace(tmp, target)
        else:
            self.fs.put_file(os.fspath(local_path), target)
        return StoredObject(uri=self.uri(key), sha256=sha, bytes=size)

    def put_stream(self, stream: IO[bytes], key: str, *, max_bytes: int | None = None) -> StoredObject:
        """Copy a binary stream in; raises ValueError past ``max_bytes`` (nothing is left behind)."""
        target = self._path(self.uri(key))
        tmp = f"{target}.tmp-{uuid.uuid4().hex}" if self._local else target
        if self._local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
        digest, size = hashlib.sha256(), 0
        try:
            with self.fs.open(tmp, "wb") as out:
                while chunk := stream.read(1 << 20):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise ValueError(f"larger than the limit of {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise
        if self._local:
            os.replace(tmp, target)
        return StoredObject(uri=self.uri(key), sha256=digest.hexdigest(), bytes=size)

    def put_dir(self, local_dir: str | os.PathLike, key: str) -> StoredObject:
        """Copy a folder in (a model, a checkpoint). Local stores copy into a temporary folder and
        rename it, so a reader never sees half a folder; object stores upload file by file and the
        caller records the folder only afterwards. ``sha256`` is that of the sorted file list."""
        local_dir = os.fspath(local_dir)
        if not os.path.isdir(local_dir):
            # os.walk of a missing folder yields nothing: without this, a checkpoint the Trainer rotated
            # away before its upload would be stored (and recorded) as an empty folder.
            raise FileNotFoundError(errno.ENOENT, "no such folder to store", local_dir)

        def walk_error(error: OSError) -> None:
            raise error

        files = sorted(
            os.path.relpath(os.path.join(root, name), local_dir)
            for root, _, names in os.walk(local_dir, onerror=walk_error) for name in names
        )
        digest, size = hashlib.sha256(), 0
        target = self._path(self.uri(key))
        staging = f"{target}.tmp-{uuid.uuid4().hex}" if self._local else target
        try:
            for rel in files:
                source = os.path.join(local_dir, rel)
                digest.update(rel.encode("utf-8") + b"\0")
                size += os.path.getsize(source)
                destination = f"{staging}/{rel}"
                if self._local:
                    os.makedirs(os.path.dirname(destination), exist_ok=True)
                self.fs.put_file(source, destination)
        except BaseException:
            # A folder that changed under us (a file deleted mid-copy): leave no half copy behind locally.
            if self._local:
                shutil.rmtree(staging, ignore_errors=True)
            raise
        if self._local:
            os.makedirs(staging, exist_ok=True)
            if os.path.exists(target):
                shutil.rmtree(target)
            os.replace(staging, target)
        return StoredObject(uri=self.uri(key), sha256=digest.hexdigest(), bytes=size)

    def get_dir(self, uri: str, local_dir: str | os.PathLike) -> None:
        """Copy a stored folder to ``local_dir`` (created; existing files are overwritten)."""
        source = self._path(uri).rstrip("/")
        local_dir = os.fspath(local_dir)
        paths = self.fs.find(source)
        if not paths:  # put_dir never stores an empty folder: the folder is gone (or never was)
            raise FileNotFoundError(errno.ENOENT, "no stored folder", uri)
        for path in paths:
            rel = path[len(source):].lstrip("/")
            destination = os.path.join(local_dir, rel)
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            self.fs.get_file(path, destination)

    def local_folder(self, uri: str, cache: str | os.PathLike) -> tuple[str, bool]:
        """A local folder holding the stored folder ``uri``, and whether it had to be downloaded.

        The store's own path when it is local; ``uri`` itself when it is a folder on this machine (a
        model registered on a shared volume); else a download into ``cache``, kept for the next job
        (fetched into a ``.partial`` sibling first, so an interrupted download is never used)."""
        local = self.local_path(uri)
        if local is not None and os.path.isdir(local):
            return local, False
        if os.path.isdir(uri):
            return uri, False
        cache = os.fspath(cache)
        if os.path.isdir(cache):
            return cache, False
        partial = cache + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        self.get_dir(uri, partial)
        os.replace(partial, cache)
        return cache, True

    def local_path(self, uri: str) -> str | None:
        """The filesystem path of a stored object when the store is a local folder, else None."""
        return self._path(uri) if self._local else None

    def open(self, uri: str, mode: str = "rb"):
        return self.fs.open(self._path(uri), mode)

    def exists(self, uri: str) -> bool:
        return self.fs.exists(self._path(uri))

    def delete(self, uri: str) -> None:
        if self.exists(uri):
            self.fs.rm(self._path(uri), recursive=True)


def sha256_file(path: str | os.PathLike) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
