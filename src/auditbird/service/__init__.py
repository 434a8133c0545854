"""The audit-log service: REST API with API keys, workspace isolation and streaming export.

    auditbird keys create --workspace acme --scope admin
    auditbird serve --store sqlite:///audit.db

Needs the ``service`` extra (``pip install 'auditbird[service]'``).
"""

from __future__ import annotations

from .app import app_from_env, create_app
from .keys import ApiKey, KeyStore, keys_path_for
from .limits import ServiceLimits

__all__ = ["create_app", "app_from_env", "KeyStore", "ApiKey", "ServiceLimits", "keys_path_for"]
