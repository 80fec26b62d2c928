"""The documents API: the user's files, indexed and cited in answers.

    POST   /v1/documents                 multipart `file` (and optional `scope`): 202, status "pending"
    GET    /v1/documents                 the caller's documents and the global ones, with status
    GET    /v1/documents/{id}            status, pages, chunks, the error of a failed one
    GET    /v1/documents/{id}/chunks     the chunks, in order, with page and heading path
    DELETE /v1/documents/{id}

An upload is refused at once when it cannot be a document: 413 past DOCS_MAX_UPLOAD_BYTES
(counted while reading), 400 for a name that holds a path, 415 for a type we do not read or
bytes that are not what the name says. Anything found while parsing (an encrypted or damaged
PDF, an archive that would unpack too large) ends as status `failed` with the reason.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from app.documents.parse import sniff
from app.documents.scope import ScopeRefused, may_change, may_read, safe_name, scope_for
from app.errors import Forbidden, InvalidRequest, NotFound, RequestTooLarge, UnsupportedMediaType
from app.routes.deps import PrincipalDep

router = APIRouter(prefix="/v1/documents")
MULTIPART_SLACK = 64 * 1024  # the form's own bytes around the file
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"},
                   "scope": {"type": "string", "description": "global, tenant or session:<id>"}}}}}}}


async def get_library(request: Request) -> Any:
    library = getattr(request.app.state, "documents", None)
    if library is None:
        raise NotFound("documents are switched off (DOCS_ENABLED=false or MEMORY_ENABLED=false)",
                       code="documents_disabled")
    return library


LibraryDep = Annotated[Any, Depends(get_library)]


@router.post("", status_code=202, openapi_extra=UPLOAD_BODY)
async def upload(request: Request, library: LibraryDep, principal: PrincipalDep, scope: str | None = None):
    form = await _read_form(request, library.settings.max_upload_bytes)
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise InvalidRequest("send the document as a multipart form field named 'file'", param="file")
    try:
        name = safe_name(file.filename)
        owner, session_id = scope_for(form.get("scope") or scope, principal)  # one file at most: "file"
    except ScopeRefused as exc:
        raise Forbidden(str(exc), code="scope_not_allowed") from None
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="file" if "name" in str(exc) else "scope") from None
    refused = sniff(name, await file.read(4096))
    if refused:
        raise UnsupportedMediaType(refused, param="file")
    doc = await library.add_upload(name, await _keep(file, library.uploads), owner=owner, session_id=session_id)
    return JSONResponse(doc.public(), status_code=202)


@router.get("")
async def list_documents(library: LibraryDep, principal: PrincipalDep, limit: int = Query(100, ge=1, le=1000),
                         offset: int = Query(0, ge=0, le=2**53)):
    docs = [d for d in await library.store.documents() if may_read(d.owner, principal)]
    page = docs[offset:offset + limit]
    return {"object": "list", "data": [d.public() for d in page], "limit": limit, "offset": offset,
            "has_more": offset + limit < len(docs)}


@router.get("/{doc_id}")
async def get_document(doc_id: str, library: LibraryDep, principal: PrincipalDep):
    return (await _readable(doc_id, library, principal)).public()


@router.get("/{doc_id}/chunks")
async def list_chunks(doc_id: str, library: LibraryDep, principal: PrincipalDep,
                      limit: int = Query(100, ge=1, le=10_000), offset: int = Query(0, ge=0, le=2**53)):
    await _readable(doc_id, library, principal)
    chunks = await library.store.chunks(doc_id, limit, offset)
    return {"object": "list", "data": [c.public() for c in chunks], "limit": limit, "offset": offset,
            "has_more": len(chunks) == limit}


@router.delete("/{doc_id}")
async def delete_document(doc_id: str, library: LibraryDep, principal: PrincipalDep):
    doc = await _readable(doc_id, library, principal)
    if not may_change(doc.owner, principal):
        raise Forbidden("only an admin key may delete a global document", code="scope_not_allowed")
    if doc.source == "folder":
        raise InvalidRequest(f"{doc.path} is a file in DOCS_DIR: delete the file and it leaves the index")
    await library.remove(doc_id)
    return {"id": doc_id, "object": "document", "deleted": True}


async def _readable(doc_id: str, library: Any, principal: Any) -> Any:
    doc = await library.store.get(doc_id)
    if doc is None or not may_read(doc.owner, principal):
        raise NotFound(f"no document {doc_id!r}")
    return doc


async def _read_form(request: Request, limit: int) -> Any:
    """The multipart form, its bytes counted as they arrive: 413 as soon as they pass the limit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise _too_large(limit)
    seen = 0

    async def counted():
        nonlocal seen
        message = await request.receive()
        seen += len(message.get("body", b""))
        if seen > limit + MULTIPART_SLACK:
            raise _too_large(limit)
        return message

    try:
        return await Request(request.scope, counted).form(max_files=1, max_fields=8)
    except RequestTooLarge:
        raise
    except Exception as exc:  # noqa: BLE001 - starlette's multipart errors: a malformed form
        raise InvalidRequest(f"the upload is not a valid multipart form: {getattr(exc, 'detail', exc)}") from None


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"the document is larger than {limit:,} bytes (DOCS_MAX_UPLOAD_BYTES)")


async def _keep(file: UploadFile, folder: Path) -> Path:
    """The upload written to a file of its own, for the indexing worker."""
    import asyncio

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"incoming-{secrets.token_hex(8)}"
    await file.seek(0)
    await asyncio.to_thread(_copy, file.file, target)
    return target


def _copy(source: Any, target: Path) -> None:
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
