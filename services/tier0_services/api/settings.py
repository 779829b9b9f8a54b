"""Region API settings, read from the environment (`TIER0_` prefix) once per process."""

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIER0_")

    region: str = "region1"
    redis_url: str = "redis://127.0.0.1:6379/0"
    version: str = "v0.1.0"
    # Redis calls fail fast so that a dead Redis answers 503 quickly instead of hanging a worker.
    redis_timeout_seconds: float = 0.5


@lru_cache
def get_settings() -> Settings:
    return Settings()
