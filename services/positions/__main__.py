"""``python -m services.positions`` runs the engine; ``... rebuild`` prints the rebuilt digest."""

from __future__ import annotations

import json
import sys

from services.positions.app import main, rebuild

if __name__ == "__main__":
    if sys.argv[1:] == ["rebuild"]:
        print(json.dumps(rebuild()))
    elif sys.argv[1:]:
        sys.exit("usage: python -m services.positions [rebuild]")
    else:
        main()
