"""Settings, read once from the environment and `.env`, then passed to whoever needs them.

Every field maps to an upper-case environment variable of the same name (``PORT=8000``).
Nothing here runs at import: build a `Settings()` in the entry point and hand it to
`app.main.create_app(settings)`; tests build their own with keyword arguments.

    >>> Settings(port=9000, upstream_base_url="http://127.0.0.1:11434/v1").port
    9000
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.limits import MessageLimits

JsonDict = Annotated[dict, NoDecode]
JsonList = Annotated[list, NoDecode]


class Settings(BaseSettings):
    """All configuration of the service, documented one per line in `.env.example`."""

    # Inputs stay out of validation errors: several settings are secrets.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True,
                                      hide_input_in_errors=True)

    # Service
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    # postgresql://user:pass@host:port/db: every conversation in PostgreSQL (pgvector), shared by
    # replicas; unset: per-conversation SQLite files under DATA_DIR, one process
    database_url: str | None = Field(None, repr=False)
    database_pool_size: int = Field(10, ge=1)
    workers: int = Field(1, ge=1)  # processes for `memory-proxy serve`; more than one needs DATABASE_URL
    # Background jobs: idle workers' polling (NOTIFY wakes them sooner), a claimed job's lease (a
    # dead replica's jobs are taken over after it), the sweep for pending messages
    jobs_poll_seconds: float = Field(1.0, gt=0)
    jobs_lease_seconds: float = Field(60.0, gt=0)
    jobs_sweep_seconds: float = Field(15.0, ge=0)
    log_dir: Path = Path("logs")
    log_level: str = "INFO"
    log_json: bool = True
    log_content: bool = False
    max_request_bytes: int = 8 * 1024 * 1024
    max_messages: int = Field(4096, ge=1)
    max_message_chars: int = Field(262_144, ge=1)
    max_content_parts: int = Field(256, ge=1)

    # Access: keys (clear or sha256:<hex>), per-key limits, what browsers may do
    api_keys: JsonList = Field(default_factory=list, repr=False)
    admin_api_keys: JsonList = Field(default_factory=list, repr=False)
    rate_limit_rpm: int = Field(0, ge=0)
    rate_limit_tpm: int = Field(0, ge=0)
    cors_origins: JsonList = Field(default_factory=list)
    allowed_hosts: JsonList = Field(default_factory=list)

    # Upstream (OpenAI-compatible) and models
    upstream_base_url: str = ""
    upstream_api_key: str = Field("", repr=False)
    default_model: str = ""
    models: JsonList = Field(default_factory=list)
    model_aliases: JsonDict = Field(default_factory=dict)
    upstream_connect_timeout: float = 5.0
    upstream_read_timeout: float = 120.0
    upstream_first_byte_timeout: float = 60.0
    upstream_max_retries: int = 2
    upstream_retry_max_wait: float = 8.0
    upstream_max_concurrency: int = 64
    upstreams: JsonList = Field(default_factory=list)
    routes: JsonDict = Field(default_factory=dict)

    # Gemini
    gemini_api_key: str = Field("", repr=False)
    gemini_base_url: str = ""
    gemini_models: JsonList = Field(default_factory=list)
    gemini_safety_settings: JsonDict = Field(default_factory=dict)

    # Failover
    circuit_failures: int = 3
    circuit_reset_seconds: float = 30.0

    # Memory
    memory_enabled: bool = True
    context_tokens: int = 8192
    model_context_tokens: JsonDict = Field(default_factory=dict)
    budget_persona: float = 0.20
    budget_memories: float = 0.25
    budget_recent: float = 0.35
    budget_response: float = 0.20
    store_max_open: int = 64
    working_memory_messages: int = 256
    session_idle_seconds: float = 1800.0
    memory_ram_mb: int = Field(512, ge=0)
    auxiliary_patterns: JsonList = Field(default_factory=list)
    continue_nudge_patterns: JsonList = Field(default_factory=list)
    continue_separator: str = " "
    # How far recall reaches across a person's conversations (app.persons): session, character, person
    memory_scope: Literal["session", "character", "person"] = "character"

    # Embeddings and retrieval
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_backend: Literal["auto", "onnx", "torch"] = "auto"
    embedding_cache_dir: Path | None = None
    embedding_threads: int = 2
    numpy_threads: int = 1  # BLAS threads for the search's matrix products (0: numpy's default, every core)
    embedding_cache_size: int = 8192
    embedding_background_threads: int = Field(1, ge=0)
    embedding_background_nice: int = Field(10, ge=0, le=19)
    embedding_query_int8: bool = True
    embedding_stored_int8: bool = False
    embedding_context_int8: bool = True
    retrieval_k: int = 12
    weight_importance: float = 0.15
    weight_recency: float = 0.10
    weight_emotion: float = 0.05
    weight_specificity: float = 0.8
    recall_turn_share: float = Field(0.05, ge=0.0, le=1.0)

    # Persona memory: earlier system prompts, chunked and offered back when relevant
    persona_chunk_tokens: int = Field(128, ge=16)
    persona_chunk_overlap: int = Field(32, ge=0)
    persona_recall_k: int = Field(3, ge=0)
    persona_min_score: float = 0.4

    # Documents: a knowledge base of the user's files, indexed, watched and cited
    docs_enabled: bool = True
    docs_dir: Path | None = None
    docs_watch: bool = True
    docs_max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1)
    docs_max_unpacked_bytes: int = Field(200 * 1024 * 1024, ge=1)
    docs_chunk_tokens: int = Field(200, ge=32)
    docs_recall_k: int = Field(4, ge=0)
    docs_min_score: float = 0.35

    # Emotion
    emotion_guidance: bool = True

    # Summaries and tiers
    summary_every: int = 20
    summary_enabled: bool = True
    summary_model: str = ""
    consolidate_interval_seconds: float = 300.0
    short_term_embedding_days: float = 0.0

    # Observability
    metrics_enabled: bool = True
    metrics_port: int = Field(0, ge=0, le=65535)
    request_log_enabled: bool = True
    request_log_days: float = 30.0
    request_log_max_rows: int = 200_000

    @field_validator("models", "api_keys", "upstreams", "auxiliary_patterns", "continue_nudge_patterns",
                     "gemini_models", "admin_api_keys", "cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _parse_list(cls, value: object) -> object:
        """Accept JSON (`["a","b"]`) or a comma-separated list (`a,b`)."""
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("embedding_cache_dir", "docs_dir", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """`EMBEDDING_CACHE_DIR=` (as in .env.example) means the default, not the current directory."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("model_aliases", "model_context_tokens", "gemini_safety_settings", "routes",
                     mode="before")
    @classmethod
    def _parse_mapping(cls, value: object) -> object:
        """Accept JSON (`{"a": "b"}`) or `a=b,c=d`."""
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return {}
            if value.startswith("{"):
                return json.loads(value)
            pairs = (part.split("=", 1) for part in value.split(",") if "=" in part)
            return {k.strip(): v.strip() for k, v in pairs}
        return value

    @field_validator("api_keys", "admin_api_keys", mode="after")
    @classmethod
    def _check_keys(cls, value: list) -> list:
        from app.auth import key_digest

        for key in value:
            key_digest(str(key))  # a malformed `sha256:` entry fails at start-up, naming the rule
        return [str(key) for key in value]

    @field_validator("auxiliary_patterns", "continue_nudge_patterns", mode="after")
    @classmethod
    def _check_patterns(cls, value: list) -> list:
        from app.auxiliary import compile_patterns

        compile_patterns(value)
        return value

    @model_validator(mode="after")
    def _check_budget(self) -> Settings:
        shares = (self.budget_persona, self.budget_memories, self.budget_recent, self.budget_response)
        if any(s < 0 or s > 1 for s in shares) or sum(shares) > 1.0 + 1e-9:
            raise ValueError("BUDGET_* shares must each be within 0..1 and sum to at most 1")
        if self.context_tokens < 256:
            raise ValueError("CONTEXT_TOKENS must be at least 256")
        return self

    @property
    def message_limits(self) -> MessageLimits:
        return MessageLimits(self.max_messages, self.max_message_chars, self.max_content_parts)

    @property
    def sessions_dir(self) -> Path:
        return self.data_dir / "sessions"

    @property
    def documents_dir(self) -> Path:
        """The watched folder of documents: DOCS_DIR, else DATA_DIR/docs."""
        return self.docs_dir or self.data_dir / "docs"

    @property
    def model_cache_dir(self) -> Path:
        return self.embedding_cache_dir or self.data_dir / "models"

    def context_size(self, model: str) -> int:
        """The total context budget for `model` (per-model setting, else CONTEXT_TOKENS)."""
        return int(self.model_context_tokens.get(model, self.context_tokens))
