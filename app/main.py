"""The web application: routers, middleware, static files, error pages."""

import os

# One BLAS thread per web process: the results' bootstrap multiplies matrices, and OpenBLAS
# threads that spin on shared cores beside other requests and processes cost more CPU than
# they save. Set before anything imports numpy; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import import_module
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.accounts.deps import Forbidden, LoginRequired, TooManyAttempts
from app.metrics import stats
from app.security_headers import SecurityMiddleware
from app.web import TEMPLATE_DIR, redirect, render

# Each domain package exposes `router` in its routes.py (its pages, and the unversioned /api/
# paths kept for old scripts), and `api` if it has /api/v1 routes; order only matters for the nav.
DOMAINS = [
    "accounts",
    "home",
    "questions",
    "variants",
    "model_configs",
    "runs",
    "imports",
    "rating",
    "judging",
    "metrics",
    "sdi",
    "training",
    "experiments",
    "bundles",
]


OPENAPI_URL = "/api/openapi.json"
API_DESCRIPTION = """The JSON API for scripts and notebooks. Authenticate with a personal token,
`Authorization: Bearer sdilab_…` (create one on your account page or with
`sdilab tokens create`); a read token may only GET, and a token reaches what its owner's role
reaches (a rater's: only their own tokens). Every list is paged (`offset`, `limit` up to 1,000,
with the `total`); the runs, replies and ratings also stream as JSON Lines with
`format=jsonl` (every row when `limit` is left out). Errors answer `{"detail": ...}`: 401
without a valid token, 403 when the role or the token's scope does not allow it, 404 for an
unknown id, 422 for invalid input (one line per problem), 429 after too many wrong tokens.
The unversioned `/api/...` paths of older scripts still answer, outside this schema."""
API_TAGS = [
    {"name": "runs", "description": "Runs and their progress"},
    {
        "name": "results",
        "description": "Metrics with their CIs, replies with their labels, ratings",
    },
    {"name": "judges", "description": "Judges against the humans, and rates by PPI"},
    {"name": "questions", "description": "Question sets and their statements"},
    {"name": "training", "description": "Local LoRA training runs"},
    {"name": "account", "description": "Your own API tokens"},
]
# Swagger UI from our own static files (swagger-ui-dist, see app/static/swagger-ui/VENDORED.md),
# started by a script file: FastAPI's own page loads it from a CDN with an inline script, which
# the Content-Security-Policy blocks (and which needs the network).
SWAGGER_UI_VERSION = "5.36.0"
API_DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sdilab API</title>
<link rel="stylesheet" href="/static/swagger-ui/swagger-ui.css?v={SWAGGER_UI_VERSION}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{OPENAPI_URL}"></div>
<script src="/static/swagger-ui/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}"></script>
<script src="/static/api-docs.js"></script>
</body>
</html>
"""


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Before the first request: the results pages' statistics libraries.
    stats.preload()
    yield


def create_app(*, every_route_in_schema: bool = False) -> FastAPI:
    """``every_route_in_schema``: the schema lists the pages and the unversioned /api/ paths
    too (their parameters and forms are declared): what the fuzz tests send requests from."""
    app = FastAPI(
        title="sdilab",
        version="1",
        description=API_DESCRIPTION,
        openapi_tags=API_TAGS,
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_URL,
        lifespan=_lifespan,
    )
    app.add_middleware(SecurityMiddleware)
    app.mount("/static", StaticFiles(directory=str(TEMPLATE_DIR.parent / "static")), name="static")
    for domain in DOMAINS:
        module = import_module(f"app.{domain}.routes")
        # The schema describes the versioned JSON API only: no pages, no unversioned paths.
        app.include_router(module.router, include_in_schema=every_route_in_schema)
        if hasattr(module, "api"):
            app.include_router(module.api)

    @app.get("/api/docs", include_in_schema=False)
    async def _api_docs() -> HTMLResponse:
        return HTMLResponse(API_DOCS_PAGE)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if _wants_json(request):
            return JSONResponse(
                {"detail": str(exc) or "Not authenticated"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(request, f"/login?next={quote(target, safe='')}")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": str(exc) or "Forbidden"}, status_code=403)
        return render(
            request,
            "error.html",
            {"title": "Not allowed", "message": "Your role does not allow this page."},
            status_code=403,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request) or exc.status_code == 405:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return render(
            request,
            "error.html",
            {"title": f"Error {exc.status_code}", "message": str(exc.detail)},
            status_code=exc.status_code,
        )

    @app.exception_handler(TooManyAttempts)
    async def _too_many(_request: Request, _exc: TooManyAttempts) -> Response:
        return JSONResponse(
            {"detail": "Too many wrong tokens from this address. Wait 15 minutes."},
            status_code=429,
            headers={"Retry-After": "900"},
        )

    @app.exception_handler(OverflowError)
    async def _too_large(request: Request, _exc: OverflowError) -> Response:
        # A safety net: every int parameter is bounded where it is declared (app.web.DbInt),
        # but a number parsed by hand from a form can still reach the database too large for it.
        message = "A number in the request is larger than the database can hold."
        if _wants_json(request):
            return JSONResponse({"detail": [message]}, status_code=422)
        return render(
            request, "error.html", {"title": "Invalid input", "message": message}, status_code=422
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', [])[1:])}: {err.get('msg')}"
            for err in exc.errors()
        ]
        if _wants_json(request):
            return JSONResponse({"detail": problems}, status_code=422)
        return render(
            request,
            "error.html",
            {"title": "Invalid input", "message": "; ".join(problems)},
            status_code=422,
        )

    return app


app = create_app()
