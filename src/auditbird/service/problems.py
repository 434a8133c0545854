"""Errors as RFC 9457 ``application/problem+json``: every bad field listed, never a bare 500."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from starlette.responses import Response

from .._errors import Problem

__all__ = ["ProblemError", "problem_response", "PROBLEM_TYPE"]

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
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors or [])
        self.slug = slug
        self.headers = dict(headers or {})

    def response(self, instance: str | None = None) -> Response:
        return problem_response(
            self.status,
            self.detail,
            errors=self.errors,
            slug=self.slug,
            headers=self.headers,
            instance=instance,
        )


def problem_response(
    status: int,
    detail: str,
    *,
    errors: Sequence[Problem] = (),
    slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
) -> Response:
    title = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [p.as_dict() for p in errors]
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=dict(headers or {}),
    )
