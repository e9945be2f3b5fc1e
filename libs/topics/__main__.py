"""``python -m libs.topics create`` creates the table's missing topics (idempotent) on the
broker named by ``KAFKA_BOOTSTRAP_SERVERS``; ``python -m libs.topics list`` prints the table."""

from __future__ import annotations

import argparse
import sys

from libs.topics import TopologyError, create_topics, exchange_topics, markdown_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m libs.topics", description=__doc__)
    parser.add_argument("action", choices=["create", "list"])
    args = parser.parse_args(argv)
    if args.action == "list":
        print(markdown_table(exchange_topics()))
        return 0
    from libs.settings import KafkaSettings, load_settings

    settings = load_settings(KafkaSettings)
    try:
        created = create_topics(settings.kafka_bootstrap_servers, exchange_topics())
    except TopologyError as error:
        print(f"python -m libs.topics create: {error}", file=sys.stderr)
        return 2
    names = ", ".join(created) or "none"
    print(f"topics ready on {settings.kafka_bootstrap_servers}; created: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
