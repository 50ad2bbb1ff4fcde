"""Small builders for test data."""

import itertools
from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.accounts import service
from app.accounts.schemas import UserCreate
from app.models import Role, User

_counter = itertools.count(1)
PASSWORD = "correct horse battery"


@dataclass
class UserWithPassword:
    user: User
    password: str

    @property
    def id(self) -> int:
        assert self.user.id is not None
        return self.user.id

    @property
    def email(self) -> str:
        return self.user.email


def make_user(session: Session, role: str = "rater", email: str | None = None) -> UserWithPassword:
    n = next(_counter)
    user = service.create_user(
        session,
        UserCreate(email=email or f"{role}{n}@example.org", password=PASSWORD, role=Role(role)),
    )
    return UserWithPassword(user=user, password=PASSWORD)


def login(client: TestClient, who: UserWithPassword) -> None:
    response = client.post(
        "/login", data={"email": who.email, "password": who.password}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
