"""One command line to inspect and verify the exchange: ``python -m exchange`` (``exchange``).

``status``, ``verify``, ``rebuild``, ``replay`` and ``tail``; see ``exchange.cli`` and
docs/RUNNING.md. The stack's settings come from flags, then the environment, then
``infra/stack.toml`` (what ``make up`` runs), so it works right after ``make up``.
"""
