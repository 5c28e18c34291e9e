"""Files: JSONL uploads, checked line by line before anything is stored, and small text files.

Purpose `prompt` takes a UTF-8 text file (a prompt template, a topic list); purpose `pretrain` takes the
text of continued pre-training as UTF-8 text (documents separated by a blank line) or as JSONL with a
`text` field per line; every other purpose takes JSONL with one JSON object per non-blank line. A file's bytes come back from `GET /v1/files/{id}/content`;
`DELETE /v1/files/{id}` removes it, unless an unfinished job reads it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select, update

from belle_gateway.deps import SessionDep, SettingsDep, StoreDep, TeamDep
from belle_gateway.errors import APIError, unstorable
from belle_gateway.openapi import error_responses
from belle_gateway.schemas import FileDeleted, FilePublic, FilesPublic
from belle_gateway.schemas.common import MAX_BIGINT
from belle_shared.db.models import TERMINAL_STATUSES, Dataset, File, Job
from belle_shared.pretraining import PRETRAIN_PURPOSE

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/files", tags=["files"])

PURPOSES = ("fine-tune", "datagen", "eval", "import", "prompt", PRETRAIN_PURPOSE)
TEXT_PURPOSES = ("prompt",)
MAX_TEXT_BYTES = 1 << 20  # prompt templates and topic lists are small; the workers read them whole
MAX_REPORTED_LINE = 200  # characters of a bad line quoted back in an error
CHUNK_BYTES = 1 << 16  # what `content` reads from the store at a time
MEDIA_TYPES = {"prompt": "text/plain; charset=utf-8"}  # every other purpose is JSONL
JSONL_MEDIA_TYPE = "application/jsonl"


UTF8_BOM = b"\xef\xbb\xbf"


def _spool(upload: UploadFile, limit: int) -> str:
    """Copy the upload to a temporary file, refusing it past ``limit`` bytes. A UTF-8 byte-order mark at
    the start (editors on Windows add one) is dropped here, so the stored file and every reader of it
    (the importer, the trainer, the evaluator, `content`) see plain UTF-8."""
    fd, path = tempfile.mkstemp(prefix="belle-upload-", suffix=".jsonl")
    size = 0
    first = True
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.file.read(1 << 20):
                if first:
                    first = False
                    chunk = chunk.removeprefix(UTF8_BOM)
                size += len(chunk)
                if size > limit:
                    raise APIError(413, f"file is larger than the upload limit of {limit} bytes", param="file",
                                   code="file_too_large")
                out.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    if size == 0:
        os.unlink(path)
        raise APIError(400, "file is empty", param="file", code="empty_file")
    return path


def _check_jsonl(path: str, *, needs_text: bool = False) -> int:
    """Every non-blank line must be a JSON object (with its document as a string `text` when
    `needs_text`: a `pretrain` upload); returns the number of such lines."""
    rows = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise APIError(400, f"line {number}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                               param="file", code="invalid_jsonl") from None
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                snippet = line.strip()[:MAX_REPORTED_LINE]
                raise APIError(400, f"line {number}: not valid JSON ({exc.msg} at column {exc.colno}): {snippet}",
                               param="file", code="invalid_jsonl") from None
            if not isinstance(value, dict):
                raise APIError(400, f"line {number}: expected a JSON object, found {type(value).__name__}",
                               param="file", code="invalid_jsonl")
            if needs_text and not isinstance(value.get("text"), str):
                raise APIError(400, f"line {number}: a pretrain row needs its document as a string field 'text'",
                               param="file", code="invalid_jsonl")
            rows += 1
    if rows == 0:
        raise APIError(400, "file has no JSON lines", param="file", code="empty_file")
    return rows


def _check_text(path: str) -> int:
    """A UTF-8 text file with some non-blank content; returns its number of lines."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise APIError(400, f"line {line}: not UTF-8 text ({exc.reason} at byte {exc.start})", param="file",
                       code="invalid_text") from None
    if not text.strip():
        raise APIError(400, "file has no text", param="file", code="empty_file")
    return len(text.splitlines())


def _is_jsonl(path: str) -> bool:
    """Whether a `pretrain` upload is JSONL (its first non-blank line is a JSON object) rather than text."""
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                try:
                    return isinstance(json.loads(raw), dict)
                except ValueError:
                    return False
    return False


def _store_upload(upload: UploadFile, purpose: str, session, store, settings, team) -> File:
    text = purpose in TEXT_PURPOSES
    path = _spool(upload, min(MAX_TEXT_BYTES, settings.max_upload_bytes) if text else settings.max_upload_bytes)
    try:
        if purpose == PRETRAIN_PURPOSE:  # plain text or JSONL, as large as any upload
            text = not _is_jsonl(path)
            lines = _check_text(path) if text else _check_jsonl(path, needs_text=True)
        else:
            lines = _check_text(path) if text else _check_jsonl(path)
        file_id = uuid.uuid4()
        stored = store.put_file(path, f"teams/{team.id}/files/{file_id}.{'txt' if text else 'jsonl'}")
    finally:
        os.unlink(path)
    filename = os.path.basename(upload.filename or ("upload.txt" if text else "upload.jsonl"))[:255]
    file = File(id=file_id, team_id=team.id, filename=filename, purpose=purpose, bytes=stored.bytes, lines=lines,
                sha256=stored.sha256, uri=stored.uri)
    session.add(file)
    session.commit()
    return file


@router.post("", status_code=201, response_model=FilePublic, responses=error_responses(413))
async def upload(
    request: Request, session: SessionDep, store: StoreDep, settings: SettingsDep, team: TeamDep,
    file: UploadFile, purpose: str = Form("fine-tune"),
):
    """Upload a file (multipart field `file`): JSONL with one object per line, or text for purpose `prompt`."""
    form = await request.form()  # (already parsed for the parameters: cached)
    for field in ("file", "purpose"):
        if len(form.getlist(field)) > 1:
            raise APIError(400, f"{field}: given {len(form.getlist(field))} times; send it once", param=field,
                           code="repeated_field")
    # A multipart form is not JSON: the gateway's check of every JSON string (errors.RefuseUnstorableText)
    # does not see these, and the filename is stored.
    why = unstorable(file.filename or "")
    if why:
        raise APIError(400, f"file: its filename {why}", param="file", code="invalid_characters")
    if purpose not in PURPOSES:
        raise APIError(400, f"purpose must be one of {', '.join(PURPOSES)}; got {purpose!r}", param="purpose",
                       code="invalid_purpose")
    created = await run_in_threadpool(_store_upload, file, purpose, session, store, settings, team)
    return FilePublic.of(created)


@router.get("", response_model=FilesPublic)
def list_(session: SessionDep, team: TeamDep, limit: int = Query(20, ge=1, le=100),
          offset: int = Query(0, ge=0, le=MAX_BIGINT)):
    """The team's files, newest first."""
    where = File.team_id == team.id
    total = session.scalar(select(func.count()).select_from(File).where(where)) or 0
    rows = session.scalars(select(File).where(where).order_by(File.created_at.desc()).limit(limit).offset(offset)).all()
    return FilesPublic(data=[FilePublic.of(f) for f in rows], has_more=offset + len(rows) < total)


def _team_file(session, team, file_id: uuid.UUID, *, for_update: bool = False) -> File:
    query = select(File).where(File.id == file_id, File.team_id == team.id)
    file = session.scalar(query.with_for_update() if for_update else query)
    if file is None:
        raise APIError(404, f"no file with id {file_id}", param="file_id", code="file_not_found")
    return file


@router.get("/{file_id}", response_model=FilePublic)
def get(file_id: uuid.UUID, session: SessionDep, team: TeamDep):
    """One file's metadata."""
    return FilePublic.of(_team_file(session, team, file_id))


def _content_disposition(filename: str) -> str:
    quoted = quote(filename)
    if quoted == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename*=utf-8''{quoted}"


def _chunks(stream) -> Iterator[bytes]:
    try:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk
    finally:
        stream.close()


@router.get("/{file_id}/content", response_class=StreamingResponse,
            responses={200: {"content": {JSONL_MEDIA_TYPE: {}, MEDIA_TYPES["prompt"]: {}}}})
def content(file_id: uuid.UUID, session: SessionDep, store: StoreDep, team: TeamDep):
    """The file's bytes as uploaded, streamed (OpenAI's `client.files.content(id)`): JSONL as
    `application/jsonl`, a `prompt` file as UTF-8 text, with the upload's filename."""
    file = _team_file(session, team, file_id)
    try:
        stream = store.open(file.uri, "rb")
    except FileNotFoundError:
        log.error("file %s: its stored object %s is missing", file.id, file.uri)
        raise APIError(404, f"file {file_id} has no stored content", param="file_id",
                       code="file_content_missing") from None
    headers = {"Content-Disposition": _content_disposition(file.filename), "Content-Length": str(file.bytes)}
    media_type = MEDIA_TYPES["prompt"] if file.uri.endswith(".txt") else JSONL_MEDIA_TYPE
    return StreamingResponse(_chunks(stream), media_type=media_type,
                             headers=headers)


def _names_file(value: Any, file_id: str, key: str = "") -> bool:
    """Whether a spec (or a part of one, e.g. a pipeline's steps) names ``file_id`` in a field whose
    name ends with ``file_id`` (``training_file_id``, ``prompt_file_id``, ...) or ``file_ids``."""
    if isinstance(value, dict):
        return any(_names_file(v, file_id, str(k)) for k, v in value.items())
    if isinstance(value, list):
        return any(_names_file(v, file_id, key) for v in value)
    return key.endswith(("file_id", "file_ids")) and str(value) == file_id


def jobs_reading(session, team_id: uuid.UUID, file_id: uuid.UUID) -> list[Job]:
    """The team's unfinished jobs (pipelines included) whose spec names the file, oldest first."""
    jobs = session.scalars(select(Job).where(Job.team_id == team_id, Job.status.not_in(list(TERMINAL_STATUSES)))
                           .order_by(Job.created_at, Job.id)).all()
    return [job for job in jobs if _names_file(job.spec, str(file_id))]


@router.delete("/{file_id}", response_model=FileDeleted, responses=error_responses(409))
def delete(file_id: uuid.UUID, session: SessionDep, store: StoreDep, team: TeamDep):
    """Delete a file: its row and its stored bytes (OpenAI's `client.files.delete(id)`).

    A file that a queued or running job (or pipeline) reads cannot vanish under it: the delete is
    refused with a 409 (`file_in_use`) naming those jobs; cancel them or wait for them to end. Jobs
    that ended keep the id in their spec. Datasets imported from the file stay, with
    `source_file_id` null. Another team's file is a 404."""
    # The row lock orders this against a job submission that checks the file (it reads it FOR SHARE):
    # either the job is committed first and seen below, or the submission finds no file.
    file = _team_file(session, team, file_id, for_update=True)
    readers = jobs_reading(session, team.id, file.id)
    if readers:
        named = ", ".join(f"{job.status} {job.type} job {job.id}" for job in readers)
        raise APIError(409, f"file {file_id} is read by {len(readers)} unfinished job(s): {named}; cancel them or "
                       "wait for them to end", param="file_id", code="file_in_use")
    uri = file.uri
    session.execute(update(Dataset).where(Dataset.source_file_id == file.id).values(source_file_id=None))
    session.delete(file)
    session.commit()
    try:
        store.delete(uri)
    except Exception:  # the row is gone: an object left behind costs space, not correctness
        log.exception("file %s: deleted, but its stored object %s could not be removed", file_id, uri)
    return FileDeleted(id=file_id)
