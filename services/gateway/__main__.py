"""Run the gateway: ``python -m services.gateway`` (settings from the environment).

``python -m services.gateway migrate`` only applies the database migrations.
"""

from __future__ import annotations

import sys

import uvicorn

from libs.ops import calm_gc, configure_logging
from libs.settings import load_settings
from services.gateway.app import create_app
from services.gateway.db import migrate
from services.gateway.settings import GatewaySettings


def main() -> None:
    configure_logging()
    settings = load_settings(GatewaySettings)
    if sys.argv[1:] == ["migrate"]:
        migrate(settings.database_url)
        return
    app = create_app(settings)
    calm_gc()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        ws_max_size=settings.max_body_bytes,  # a bigger WebSocket message closes it (1009)
    )


main()
