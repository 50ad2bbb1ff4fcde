from fastapi import APIRouter

router = APIRouter(tags=["model_configs"])
