"""``Personal``: the marker that declares a metadata field personal data of a data subject.

    @action("user.invited")
    class UserInvited(BaseModel):
        email: Annotated[str, Personal()]                            # the actor's: user:<actor id>
        invitee: Annotated[str, Personal(subject="invitee_id")]      # user:<metadata.invitee_id>
        invitee_id: str

A marked field is stored encrypted under its subject's key (see :mod:`auditbird.erasure`); the
subject is named by where its id is: ``"actor"`` (the event's actor), or a path into the
metadata (``"invitee_id"``, ``"customer.id"``), prefixed with ``kind`` (``user`` by default).
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel

__all__ = ["Personal", "PersonalField", "personal_fields"]


@dataclass(frozen=True)
class Personal:
    """Marks a ``str`` metadata field as personal data of ``subject`` (default: the actor).

    >>> Personal().subject, Personal(subject="customer_id", kind="customer").kind
    ('actor', 'customer')
    """

    subject: str = "actor"
    kind: str = "user"

    def __post_init__(self) -> None:
        if not self.subject or not all(self.subject.split(".")):
            raise ValueError(f"Personal(subject={self.subject!r}): name 'actor' or a metadata field path")
        if not self.kind or ":" in self.kind:
            raise ValueError(f"Personal(kind={self.kind!r}): a word such as 'user' or 'customer'")


@dataclass(frozen=True)
class PersonalField:
    """Where a personal value sits in the metadata (``path``) and whose it is (``marker``)."""

    path: tuple[str, ...]
    marker: Personal


@cache
def personal_fields(model: type[BaseModel]) -> tuple[PersonalField, ...]:
    """The personal ``str`` fields of ``model``, nested models included (computed once per model).

    Raises :class:`TypeError` for a marker on a field that is not a string: the stored value is
    ciphertext text, and an erased value reads as ``"[erased]"``, which only a string can hold.
    """
    found: list[PersonalField] = []
    _walk(model, (), found, depth=0)
    return tuple(found)


def _walk(model: type[BaseModel], prefix: tuple[str, ...], out: list[PersonalField], depth: int) -> None:
    if depth > 8:  # a self-referencing model: personal fields that deep are not supported
        return
    for name, info in model.model_fields.items():
        path = (*prefix, info.alias or name)
        markers = [m for m in info.metadata if isinstance(m, Personal)] or _inner_markers(info.annotation)
        if markers:
            if not _is_str(_strip(info.annotation)):
                raise TypeError(
                    f"{model.__qualname__}.{name} is marked Personal but is not a str field; "
                    "mark only string fields (an erased value reads as '[erased]')"
                )
            out.append(PersonalField(path, markers[0]))
            continue
        nested = _model_of(info.annotation)
        if nested is not None:
            _walk(nested, path, out, depth + 1)


def _inner_markers(annotation: Any) -> list[Personal]:
    """Markers inside an optional: ``Annotated[str, Personal()] | None``."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return []
    return [
        m
        for arg in typing.get_args(annotation)
        if typing.get_origin(arg) is typing.Annotated
        for m in arg.__metadata__
        if isinstance(m, Personal)
    ]


def _strip(annotation: Any) -> Any:
    """``Annotated[str, ...] | None`` -> ``str | None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = tuple(
            typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a
            for a in typing.get_args(annotation)
        )
        return typing.Union[args]  # noqa: UP007 - built from a tuple
    return annotation


def _is_str(annotation: Any) -> bool:
    if annotation is str:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and args[0] is str
    return False


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else None
    return None
