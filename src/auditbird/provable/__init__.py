"""Provable history: a Merkle tree per workspace (RFC 9162), proofs, signed checkpoints.

See docs/provable-history.md. ``prove(log, uid)`` and ``consistency(log, old, new)`` take an
``AuditLog`` (or a store) that keeps a tree (:class:`~auditbird.stores.capabilities.ProvableStore`).
"""

from __future__ import annotations

from ..stores.merkle import ProofError
from .proofs import ConsistencyProof, InclusionProof, consistency, prove, tree_root

__all__ = ["ConsistencyProof", "InclusionProof", "ProofError", "consistency", "prove", "tree_root"]
