"""Strings that look sealed are refused on publish (review finding 7): a writer could otherwise
put ``$erasable:v1:…`` values in any field, read back as [erased], each costing a key look-up
on every read. Only auditbird's own sealing writes that prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from auditbird import ActionRegistry, AuditLog, AuditValidationError, Personal, action

FAKE = "$erasable:v1:nokey:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def _registry() -> ActionRegistry:
    reg = ActionRegistry()

    @action("user.invited", registry=reg)
    class UserInvited(BaseModel):
        email: Annotated[str, Personal()]
        plan: str = "free"

    return reg


def _event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "org:1",
        "action": "user.invited",
        "actor": {"id": "42", "name": "Ada"},
        "metadata": {"email": "ada@example.org"},
    }
    event.update(changes)
    return event


@pytest.fixture(params=["sqlite", "memory"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    # A file store keeps subject keys (and seals); the memory store keeps none: both refuse.
    store = f"sqlite:///{tmp_path / 'audit.db'}" if request.param == "sqlite" else "sqlite:///:memory:"
    with AuditLog(store, workspace="acme", registry=_registry()) as log:
        yield log


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"metadata": {"email": "a@x.org", "plan": FAKE}}, "metadata.plan"),
        ({"metadata": {"email": FAKE}}, "metadata.email"),
        ({"actor": {"id": "42", "name": FAKE}}, "actor.name"),
        ({"actor": {"id": "svc", "name": FAKE, "type": "service"}}, "actor.name"),
        ({"action": "free.form", "metadata": {"notes": [{"x": "$erasable:anything"}]}}, "metadata.notes"),
    ],
)
def test_a_value_that_looks_sealed_is_refused_naming_its_field(
    log: AuditLog, changes: dict[str, Any], where: str
) -> None:
    with pytest.raises(AuditValidationError) as caught:
        log.publish_audit_log(_event(**changes))
    (problem,) = caught.value.problems
    assert problem.loc.startswith(where) and "$erasable:" in problem.msg
    assert list(log.iter_events()) == []  # nothing stored


def test_publish_many_names_the_index_and_stores_nothing(log: AuditLog) -> None:
    with pytest.raises(AuditValidationError) as caught:
        log.publish_many([_event(), _event(metadata={"email": "b@x.org", "plan": FAKE})])
    assert [(p.index, p.loc) for p in caught.value.problems] == [(1, "metadata.plan")]
    assert list(log.iter_events()) == []


def test_the_prefix_elsewhere_in_a_value_is_kept_as_given(log: AuditLog) -> None:
    event = log.publish_audit_log(_event(metadata={"email": "a@x.org", "plan": "pro, not $erasable:v1"}))
    assert log.get(event.uid).metadata.plan == "pro, not $erasable:v1"  # type: ignore[union-attr]
