"""What ``auditbird verify`` found: shared by the store check and the offline export check."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VerifyReport"]


@dataclass(frozen=True)
class VerifyReport:
    """``ok`` and how many events verified; else ``number`` (1-based, in the workspace's
    commit order), ``problem`` (changed / missing / inserted / reordered / rewritten) and why."""

    ok: bool
    events: int
    checkpoint_size: int
    number: int | None = None
    problem: str = ""
    detail: str = ""
    expired: tuple[int, int, int] = (0, 0, 0)  # retention removed (count, first #, last #)
    expired_unsigned: bool = False  # a run that removed some is recorded past the checkpoint

    def message(self) -> str:
        if self.ok:
            count, first, last = self.expired
            gone = f"; {count} of them (#{first}-#{last}) expired by retention policy" if count else ""
            if count and self.expired_unsigned:
                gone += " (a run recorded after the checkpoint: sign a new one to cover it)"
            return f"verified {self.events} events up to checkpoint {self.checkpoint_size}{gone}"
        where = f"event #{self.number}: " if self.number is not None else ""
        return f"{where}{self.problem}: {self.detail}"
