"""``python -m exchange``: see ``exchange.cli``."""

from __future__ import annotations

import sys

from exchange.cli import main

if __name__ == "__main__":
    sys.exit(main())
