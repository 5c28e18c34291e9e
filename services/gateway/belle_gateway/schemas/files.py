"""Uploaded files (`/v1/files`), shaped as OpenAI's file object."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from belle_shared.db.models import File


class FilePublic(BaseModel):
    id: uuid.UUID
    object: str = "file"
    filename: str
    purpose: str
    bytes: int
    lines: int
    sha256: str
    created_at: int  # unix seconds, as OpenAI's file object
    status: str = "processed"

    @classmethod
    def of(cls, file: File) -> "FilePublic":
        return cls(id=file.id, filename=file.filename, purpose=file.purpose, bytes=file.bytes, lines=file.lines,
                   sha256=file.sha256, created_at=int(file.created_at.timestamp()))


class FilesPublic(BaseModel):
    object: str = "list"
    data: list[FilePublic]
    has_more: bool


class FileDeleted(BaseModel):
    """OpenAI's answer to a file deletion."""

    id: uuid.UUID
    object: str = "file"
    deleted: bool = True
