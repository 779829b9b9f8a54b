"""Settings of the AI features (`TIER0_AI_*`, plus the conventional `COHERE_API_KEY`).

Kept apart from the region API's `Settings` so that the API's core does not grow a knob per model;
the lifespan reads these once (`get_ai_settings`), tests hand their own to `runtime.start`.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tier0_contract import keys


class AISettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIER0_AI_")

    provider: Literal["auto", "local", "cohere"] = "auto"
    """`auto`: Cohere when a key is set, the local ONNX model otherwise."""
    cohere_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("COHERE_API_KEY", "TIER0_AI_COHERE_API_KEY")
    )
    cohere_embed_model: str = "embed-v4.0"
    cohere_rerank_model: str = "rerank-v3.5"
    cohere_chat_model: str = "command-r-plus-08-2024"
    cohere_timeout_seconds: float = 10.0
    local_threads: int = 2
    load_samples: bool = False
    """At start-up (background), load the labelled samples into what is empty on a primary: the
    image catalog, the corpus, a 12,000-line access log. `make up` turns it on."""
    warm_up: bool = True
    """Run the local model once before serving (its first run costs ~1 s)."""
    corpus_dir: Path | None = None
    """Folder of `.md`/`.txt` notes added to the corpus at start-up (file stem = doc id)."""
    record_access_log: bool = True
    """Aggregate the region API's own requests into the log diagnostics."""
    min_cosine: float = 0.35
    """Local relevance bar: passages below this cosine to the question are not used."""
    min_rerank: float = 0.15
    """Cohere relevance bar (rerank score) when the reranker is on."""
    images_max: int = Field(default=keys.IMAGES_MAX, ge=1)
    """Most images the catalog holds (`keys.IMAGES_MAX`): uploads beyond it are refused (409)."""
    passages_max: int = Field(default=keys.PASSAGES_MAX, ge=1)
    """Most corpus passages (`keys.PASSAGES_MAX`): documents beyond it are refused (409)."""
    logs_max_days: int = Field(default=keys.LOGS_MAX_DAYS, ge=1)
    """Most days the access-log day counts keep (`keys.LOGS_MAX_DAYS`); older days are summed."""


@lru_cache
def get_ai_settings() -> AISettings:
    return AISettings()
