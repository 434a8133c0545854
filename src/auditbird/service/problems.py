"""Errors as RFC 9457 ``application/problem+json``: every bad field listed, never a bare 500."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from starlette.responses import Response

from .._errors import Problem

__all__ = ["ProblemError", "problem_response", "PROBLEM_TYPE", "MAX_LISTED_ERRORS"]

# An answer lists the first problems and counts them all: a megabyte of bad events must not
# become a 40 MB answer (issue #10). The first ones are what a client fixes first anyway.
MAX_LISTED_ERRORS = 20
PROBLEM_TYPE = "https://auditbird.dev/problems/"
MEDIA_TYPE = "application/problem+json"


class ProblemError(Exception):
    """Raise anywhere in a handler to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[Problem] | None = None,
        slug: str | None = None,
        headers: Mapping[str, str] | None = None,
        error_count: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors or [])
        self.slug = slug
        self.headers = dict(headers or {})
        self.error_count = error_count

    def response(self, instance: str | None = None) -> Response:
        return problem_response(
            self.status,
            self.detail,
            errors=self.errors,
            slug=self.slug,
            headers=self.headers,
            instance=instance,
            error_count=self.error_count,
        )


def problem_response(
    status: int,
    detail: str,
    *,
    errors: Sequence[Problem] = (),
    slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
    error_count: int | None = None,
) -> Response:
    """``error_count``: how many problems there were, when ``errors`` holds only some of them."""
    title = HTTPStatus(status).phrase
    total = max(len(errors), error_count or 0)
    if total > MAX_LISTED_ERRORS:
        detail = f"{detail} ({total:,} problems; the first {MAX_LISTED_ERRORS} are listed)"
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [_clipped(p) for p in errors[:MAX_LISTED_ERRORS]]
        body["error_count"] = total
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _clipped(problem: Problem) -> dict[str, object]:
    """A problem's fields, each cut to a few hundred characters (they may quote the input)."""
    return {k: v[:300] if isinstance(v, str) else v for k, v in problem.as_dict().items()}
