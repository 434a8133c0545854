"""What you need to test your own code against auditbird, and a store against auditbird.

- :class:`MemoryStore`: a store in memory with every tier (streams, follow, histograms,
  snapshots), for your unit tests: ``AuditLog(MemoryStore())``.
- :mod:`auditbird.testing.contract`: the contract suite, one test case class per tier, that
  a store (yours, or one of auditbird's) subclasses with a ``make_store()``. It needs only the
  standard library's ``unittest``; pytest runs it too.

>>> from auditbird import AuditLog
>>> log = AuditLog(MemoryStore())
>>> log.publish_audit_log({"id": "user:1", "action": "user.login"}).action
'user.login'
"""

from .memory import MemoryStore

__all__ = ["MemoryStore"]
