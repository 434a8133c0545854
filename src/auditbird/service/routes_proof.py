"""``/v1/checkpoint``, ``/v1/checkpoint/consistency``, ``/v1/events/{uid}/proof``: the
workspace's Merkle tree over HTTP (docs/provable-history.md).

Handlers call :mod:`auditbird.provable` on the store behind the service's group-commit writer,
always in the key's workspace, off the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic_core import to_json

from .._errors import NotFound, UnsupportedOperation
from ..provable import ProofError, consistency, prove
from ..provable.checkpoint import CheckpointError, sign_checkpoint
from .auth import ReadKey
from .problems import ProblemError
from .schemas import ProblemDetail
from .state import ServiceState

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["proofs"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemDetail, "content": {"application/problem+json": {}}, "description": text}
    for code, text in (
        (401, "No or bad API key"),
        (404, "No such event in this workspace's tree"),
        (422, "Sizes that the tree does not have"),
        (501, "The store keeps no Merkle tree"),
    )
}


async def _call(request: Request, fn: Any, *args: Any, **kwargs: Any) -> Any:
    state: ServiceState = request.app.state.auditbird
    try:
        return await state.offload(fn, state.store.sync, *args, **kwargs)
    except NotFound as exc:
        raise ProblemError(404, str(exc)) from exc
    except ProofError as exc:
        raise ProblemError(422, str(exc)) from exc
    except (UnsupportedOperation, CheckpointError) as exc:
        raise ProblemError(501, str(exc)) from exc


@router.get(
    "/checkpoint",
    summary="The latest signed checkpoint of the key's workspace (C2SP tlog-checkpoint, Ed25519 note)",
    responses={200: {"content": {"text/plain": {}}}, **_ERRORS},
)
async def get_checkpoint(request: Request, key: ReadKey) -> Response:
    text = await _call(request, sign_checkpoint, workspace=key.workspace)
    return Response(text, media_type="text/plain; charset=utf-8")


@router.get(
    "/checkpoint/consistency",
    summary="Proof that the tree of `to` leaves extends the tree of `from`",
    responses=_ERRORS,
)
async def get_consistency(
    request: Request,
    key: ReadKey,
    first: Annotated[int, Query(alias="from", ge=1, le=2**62)],
    second: Annotated[int | None, Query(alias="to", ge=1, le=2**62)] = None,
) -> Response:
    proof = await _call(request, consistency, first, second, workspace=key.workspace)
    return Response(to_json(proof.to_json()), media_type="application/json")


@router.get(
    "/events/{uid}/proof", summary="Inclusion proof of one event in the workspace's tree", responses=_ERRORS
)
async def get_proof(
    request: Request,
    key: ReadKey,
    uid: Annotated[str, Path(min_length=1, max_length=128)],
    size: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    # With the event's canonical bytes as stored now: a client (the viewer) hashes them itself.
    proof = await _call(request, prove, uid, size=size, workspace=key.workspace, with_data=True)
    return Response(to_json(proof.to_json()), media_type="application/json")
