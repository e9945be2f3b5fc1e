"""``python -m services.matcher`` runs the matcher; ``python -m services.matcher rebuild
--symbol BTC-PERP`` rebuilds that book from the topics alone and prints its digest:

    {"symbol": "BTC-PERP", "digest": "<hex>", "offset": <last command offset applied>}
"""

from __future__ import annotations

import argparse
import json
import sys

from libs.settings import load_settings
from services.matcher.app import rebuild
from services.matcher.link import CoreDied
from services.matcher.settings import MatcherSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.matcher",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the matcher (the default)")
    rebuild_parser = commands.add_parser("rebuild", help="rebuild a book from the topics")
    rebuild_parser.add_argument("--symbol", required=True)
    args = parser.parse_args(argv)
    settings = load_settings(MatcherSettings)
    if args.command == "rebuild":
        print(json.dumps(rebuild(settings, args.symbol)))
        return 0
    from services.matcher.app import run

    try:
        return run(settings)
    except CoreDied as error:
        print(f"matcher: {error}; exiting for a restart to recover", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
