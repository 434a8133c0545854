"""Erasure by crypto-shredding (docs/erasure.md).

Personal fields (marked :class:`Personal` in an action's model, and a person's actor name) are
stored encrypted under a key per data subject, kept apart from the events in
``<store>.subjects.db``. Erasing a subject destroys its key: its fields then read as
``"[erased]"`` everywhere, while the stored events, and the Merkle tree over them, stay as
they were (their leaves hash the ciphertext), so ``auditbird verify`` still passes.
"""

from __future__ import annotations

from .erase import ERASED_ACTION, SubjectErased, erase_subject, erase_subject_async, keys_for_store
from .keys import SubjectKeys, SubjectKeyStore, subject_keys_path
from .marker import Personal, personal_fields
from .seal import ERASED, UNREADABLE, actor_subject

__all__ = [
    "Personal",
    "SubjectKeys",
    "SubjectKeyStore",
    "SubjectErased",
    "ERASED",
    "UNREADABLE",
    "ERASED_ACTION",
    "erase_subject",
    "erase_subject_async",
    "keys_for_store",
    "subject_keys_path",
    "personal_fields",
    "actor_subject",
]
