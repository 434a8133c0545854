"""Registering an action that already has a schema: the same one is fine, another one raises."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from auditbird import AuditLog
from auditbird.actions import ActionRegistry, action, default_registry


def test_an_app_action_cannot_silently_replace_the_catalogs_schema() -> None:
    import auditbird.catalog.openstatus as catalog

    with pytest.raises(ValueError) as caught:

        @action("monitor.down")
        class MonitorDown(BaseModel):
            code: str

    message = str(caught.value)
    assert "auditbird.catalog.openstatus.MonitorDown" in message  # the one registered
    assert "MonitorDown" in message.split("registered to", 1)[1].split(";", 1)[1]  # the newcomer
    assert "replace=True" in message
    assert default_registry.get("monitor.down") is catalog.MonitorDown


def test_replace_true_replaces_on_purpose(tmp_path) -> None:
    import auditbird.catalog.openstatus  # noqa: F401

    @action("monitor.down", replace=True)
    class MonitorDown(BaseModel):
        code: str

    assert default_registry.get("monitor.down") is MonitorDown
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}") as log:
        event = log.publish_audit_log({"id": "m:1", "action": "monitor.down", "metadata": {"code": "x"}})
    assert isinstance(event.metadata, MonitorDown)


def test_the_same_schema_again_is_fine(registry: ActionRegistry) -> None:
    def define() -> type[BaseModel]:
        @action("deploy.finished", registry=registry)
        class DeployFinished(BaseModel):
            service: str

        return DeployFinished

    first = define()
    second = define()  # a module imported twice defines an equal class again
    assert registry.get("deploy.finished") is second and first is not second


def test_an_identical_shape_under_another_name_is_the_same_schema(registry: ActionRegistry) -> None:
    class A(BaseModel):
        service: str

    class B(BaseModel):
        service: str

    registry.register("deploy.finished", A)
    registry.register("deploy.finished", B)
    assert registry.get("deploy.finished") is B


def test_another_version_is_not_a_conflict(registry: ActionRegistry) -> None:
    class V1(BaseModel):
        a: int

    class V2(BaseModel):
        b: int

    registry.register("deploy.finished", V1)
    registry.register("deploy.finished", V2, version=2)
    assert registry.latest_version("deploy.finished") == 2
