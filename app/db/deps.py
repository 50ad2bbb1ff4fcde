"""The request's session as a FastAPI dependency (kept apart: importing FastAPI is slow, and
the command line and the worker never need it)."""

from typing import Annotated

from fastapi import Depends
from sqlmodel import Session

from app.db.engine import get_session

# scope="function": commit before the response is sent, so a failed commit is a 500
# and a client that follows a redirect always sees what was written.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
# The default scope: the session stays open while a streamed body is sent (read-only routes
# whose rows come from a server-side cursor).
StreamSession = Annotated[Session, Depends(get_session)]
