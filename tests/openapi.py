"""The app with a schema of every route, for the tests that check or fuzz all of them.

The served schema (/api/openapi.json) describes the versioned JSON API only; the pages and the
unversioned /api/ paths are left out of it (``include_in_schema=False``). Their parameters and
forms are still declared, so this app, made with ``every_route_in_schema``, lists them too.
"""

from typing import Any

from fastapi import FastAPI

from app.main import create_app


def app_with_every_route() -> FastAPI:
    return create_app(every_route_in_schema=True)


def every_route_schema() -> dict[str, Any]:
    return app_with_every_route().openapi()
