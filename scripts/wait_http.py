#!/usr/bin/env python3
"""Wait until URL answers HTTP 2xx/3xx: `wait_http.py URL [TIMEOUT_S]` (a stack ready check)."""

import sys
import time
import urllib.error
import urllib.request


def main() -> int:
    url = sys.argv[1]
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    deadline = time.monotonic() + timeout
    error: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 400:
                    return 0
                error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            error = exc
        time.sleep(0.3)
    print(f"wait_http: {url} not answering within {timeout:g}s: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
