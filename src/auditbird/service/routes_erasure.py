"""``POST /v1/subjects/{subject}/erase``: crypto-shred a data subject (docs/erasure.md).

Admin keys only, and only in the key's workspace: another workspace's subject of the same id
keeps its key. The handler calls :func:`auditbird.erasure.erase_subject_async` on the key's
log; the erasure is recorded as an ``audit_log.subject_erased`` event by this key, and the
workspace's idempotency records (answers as published, in the clear) are deleted.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic_core import to_json

from .._errors import AuditValidationError, NotFound, UnsupportedOperation
from ..erasure import erase_subject_async
from .auth import AnyKey
from .problems import ProblemError
from .schemas import ProblemDetail
from .state import ServiceState

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["erasure"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemDetail, "content": {"application/problem+json": {}}, "description": text}
    for code, text in (
        (401, "No or bad API key"),
        (403, "The key is not an admin key"),
        (404, "The subject has no key in this workspace (unknown, or erased already): nothing changed"),
        (422, "Not a subject id (`kind:id`, e.g. user:42)"),
        (
            501,
            "The store keeps no subject keys, or (PostgreSQL) this role does not own the keys "
            "table: nothing changed",
        ),
    )
}


@router.post(
    "/subjects/{subject}/erase",
    summary="Erase a data subject: destroy its key, so its personal fields read as [erased]",
    responses=_ERRORS,
)
async def erase(
    request: Request, key: AnyKey, subject: Annotated[str, Path(min_length=3, max_length=256)]
) -> Response:
    if key.scope != "admin":
        raise ProblemError(403, f"this key has scope {key.scope!r}; erasing a subject needs 'admin'")
    state: ServiceState = request.app.state.auditbird
    log = state.log(key.workspace)
    actor = {"id": f"key:{key.key_id}", "name": key.name or "admin key", "type": "api_key"}
    try:
        event = await erase_subject_async(log, subject, workspace=key.workspace, actor=actor)
    except AuditValidationError as exc:
        raise ProblemError(422, "; ".join(str(p) for p in exc.problems)) from exc
    except NotFound as exc:
        raise ProblemError(404, str(exc)) from exc
    except UnsupportedOperation as exc:
        raise ProblemError(501, str(exc)) from exc
    except Exception:
        # The key may be gone and only the record failed: the answers kept for retries go too.
        await asyncio.to_thread(state.keys.forget_idempotency, key.workspace)
        raise
    # Idempotency records keep answers as published, personal fields in the clear: forget the
    # workspace's (which of them name the subject cannot be told); a retry re-publishes the same
    # uid and answers with the stored, erased event.
    await asyncio.to_thread(state.keys.forget_idempotency, key.workspace)
    data = event.to_dict()
    body = {"subject": subject, "workspace": key.workspace, "erased": True, "event": data}
    return Response(to_json(body), media_type="application/json")
