"""Shared by the erasure tests: an action with a personal field, and a projection that erases
its subject while folding (the snapshot/erasure race on every store)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, Field

from auditbird import ActionRegistry, AuditLog, Event, Personal, Projection, action, on
from auditbird.erasure import erase_subject

ADA_MAIL = "ada.lovelace@example.org"


def invited_registry() -> ActionRegistry:
    """A registry whose `user.invited` carries a personal `email`."""
    reg = ActionRegistry()

    @action("user.invited", registry=reg)
    class UserInvited(BaseModel):
        email: Annotated[str, Personal()]

    return reg


class ErasedMidFold(Projection):
    """Erases ``user:42`` while folding its event: the state already holds the plaintext. Set
    ``erase_from`` (the store URL the erasing log opens) for one test and reset it after."""

    erase_from: ClassVar[str] = ""
    emails: list[str] = Field(default_factory=list)

    @on("user.invited")
    def _invited(self, event: Event) -> None:
        self.emails.append(event.metadata.email)
        if self.erase_from:
            with AuditLog(self.erase_from, workspace="acme", registry=invited_registry()) as other:
                erase_subject(other, "user:42")


def invite() -> dict[str, object]:
    """Ada's invitation as ``user:42`` (her email sealed under that subject)."""
    return {"id": "org:1", "action": "user.invited", "actor": {"id": "42"}, "metadata": {"email": ADA_MAIL}}
