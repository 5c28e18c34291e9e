"""Run the gateway:

    python -m belle_gateway            # or: belle-gateway
    BELLE_PORT=9000 belle-gateway

Settings come from BELLE_* environment variables (see belle_gateway.settings).
"""

from __future__ import annotations

import uvicorn

from belle_gateway.app import create_app
from belle_gateway.settings import GatewaySettings
from belle_shared.logs import configure_logging


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                access_log=True)


if __name__ == "__main__":
    main()
