"""Settings read from the environment and .env."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings


def test_a_blank_embedding_cache_dir_means_the_data_dir(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EMBEDDING_CACHE_DIR", "")
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert settings.embedding_cache_dir is None
    assert settings.model_cache_dir == tmp_path / "models"


def test_an_embedding_cache_dir_is_used_as_given(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EMBEDDING_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert Settings(_env_file=None, data_dir=tmp_path).model_cache_dir == tmp_path / "elsewhere"


def test_recall_settings_come_from_the_environment(tmp_path: Path, monkeypatch):
    from app.memory.search.recall import RecallSettings

    monkeypatch.setenv("RECALL_TURN_SHARE", "0")
    monkeypatch.setenv("WEIGHT_SPECIFICITY", "0.3")
    recall = RecallSettings.from_settings(Settings(_env_file=None, data_dir=tmp_path))
    assert recall.turn_share == 0.0 and recall.weights.specificity == 0.3
    assert RecallSettings.from_settings(Settings(_env_file=None, data_dir=tmp_path, recall_turn_share=0.1)).turn_share == 0.1


def test_keys_are_read_as_lists_and_a_bad_one_fails_without_showing_any(tmp_path: Path, monkeypatch):
    import pytest
    from pydantic import ValidationError

    monkeypatch.setenv("API_KEYS", "sk-one-secret, sk-two-secret")
    monkeypatch.setenv("ADMIN_API_KEYS", '["sk-root-secret"]')
    monkeypatch.setenv("CORS_ORIGINS", "http://localhost:3000")
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert settings.api_keys == ["sk-one-secret", "sk-two-secret"] and settings.admin_api_keys == ["sk-root-secret"]
    assert settings.cors_origins == ["http://localhost:3000"] and settings.allowed_hosts == []
    assert "secret" not in repr(settings)
    monkeypatch.setenv("API_KEYS", "sk-one-secret,sha256:not-hex")
    with pytest.raises(ValidationError) as bad:
        Settings(_env_file=None, data_dir=tmp_path)
    assert "sha256" in str(bad.value) and "secret" not in str(bad.value)
