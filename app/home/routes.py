from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.accounts.deps import CurrentUser
from app.accounts.service import is_admin
from app.db import SessionDep
from app.home import service
from app.web import redirect, render

router = APIRouter(tags=["home"])


@router.get("/", name="home.home")
def home(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    if not is_admin(user):
        return redirect(request, "/rate")
    context = {
        "summary": service.summary(session),
        "runs": service.recent_runs(session),
        "rounds": service.waiting_rounds(session),
    }
    return render(request, "home/index.html", context)


@router.get("/healthz", include_in_schema=False, name="home.healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    service.ping(session)
    return {"status": "ok"}
