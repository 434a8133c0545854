"""``python -m auditbird``: the command line."""

from .cli import main

main()
