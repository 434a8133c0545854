"""Log streams: every committed event of a workspace to a webhook, syslog or NDJSON files.

    from auditbird.streams import StreamRegistry, StreamFilter, StreamRunner
    with StreamRegistry.for_store("sqlite:///audit.db") as streams:
        streams.add("siem", workspace="acme", kind="syslog", options={"host": "siem", "port": 6514})
    StreamRunner("sqlite:///audit.db").run(follow=True)

See docs/streams.md.
"""

from .admin import (
    LAG_SCAN_BUDGET,
    LAG_SCAN_LIMIT,
    MAX_STREAMS_PER_WORKSPACE,
    StreamStatus,
    StreamTarget,
    create_stream,
    stream_lag,
    stream_statuses,
)
from .config import (
    KINDS,
    DeadLetter,
    Stream,
    StreamExists,
    StreamRegistry,
    new_secret,
    streams_path_for,
)
from .delivery import Backoff, StreamDestination, StreamRunner, open_sink, replay_dead_letters
from .filter import StreamFilter
from .ndjson_file import NdjsonFileSink, parse_every
from .otlp import OtlpLogsSink, export_request
from .sink import DeliveryError, Sink
from .syslog import SyslogSink, format_message
from .webhook import WebhookSink, signature_header

__all__ = [
    "KINDS",
    "LAG_SCAN_BUDGET",
    "LAG_SCAN_LIMIT",
    "MAX_STREAMS_PER_WORKSPACE",
    "StreamStatus",
    "StreamTarget",
    "create_stream",
    "parse_every",
    "stream_lag",
    "stream_statuses",
    "Backoff",
    "DeadLetter",
    "DeliveryError",
    "NdjsonFileSink",
    "OtlpLogsSink",
    "export_request",
    "Sink",
    "Stream",
    "StreamDestination",
    "StreamExists",
    "StreamFilter",
    "StreamRegistry",
    "StreamRunner",
    "SyslogSink",
    "WebhookSink",
    "format_message",
    "new_secret",
    "open_sink",
    "replay_dead_letters",
    "signature_header",
    "streams_path_for",
]
