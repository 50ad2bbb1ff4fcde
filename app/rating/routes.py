from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.accounts.deps import CurrentUser
from app.web import render

router = APIRouter(tags=["rating"])


@router.get("/rate")
def rate(request: Request, user: CurrentUser) -> Response:
    return render(request, "error.html", {"title": "Rate", "message": "Nothing to rate yet."})
