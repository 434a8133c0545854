"""A Tinybird-compatible server on chDB: the Events, Pipes and Query APIs over the shipped datafiles.

``auditbird tinybird local`` runs it; :func:`auditbird.tinybird.local.server.serve` is the entry
point. Needs the ``local`` extra (chDB and Tornado).
"""
