from pydantic import BaseModel, Field

from app.accounts.security import MIN_PASSWORD_LENGTH
from app.models import Role


class UserCreate(BaseModel):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=256)
    role: Role = Role.rater
    display_name: str = Field(default="", max_length=120)


class UserPublic(BaseModel):
    id: int
    email: str
    display_name: str
    role: Role
    is_active: bool
