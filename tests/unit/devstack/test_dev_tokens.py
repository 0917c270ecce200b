"""The local stack's signing key and token files: generated once, private, reused; the
dashboard link carries the token in its fragment; tools get a key of their own."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from gapwatch.adapters.tokens import verify_token
from gapwatch.core.errors import ConfigError
from gapwatch.devstack import dev_tokens
from gapwatch.devstack.dev_tokens import (
    KEY_ENV,
    dashboard_url,
    issue_for_env,
    read_token,
    remove_token,
    stack_signing_key,
    write_token,
)
from gapwatch.devstack.services import isolated_env
from gapwatch.settings import AuthSettings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_stack_without_a_key_generates_one_privately_and_keeps_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    key, where = stack_signing_key(run, {})
    assert len(key) >= 32 and "generated" in where and key not in where
    assert mode(run / "signing-key") == 0o600
    again, where_again = stack_signing_key(run, {})
    assert again == key and "generated" not in where_again
    assert stack_signing_key(tmp_path / "other", {})[0] != key  # one key per stack


def test_the_environments_key_wins_and_nothing_is_written(tmp_path: Path) -> None:
    key, where = stack_signing_key(tmp_path, {KEY_ENV: "k" * 40})
    assert key == "k" * 40 and where == f"from {KEY_ENV}"
    assert not (tmp_path / "signing-key").exists()


def test_a_widened_key_file_is_made_private_again_and_a_short_one_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "signing-key"
    path.write_text("x" * 48 + "\n")
    path.chmod(0o644)
    assert stack_signing_key(tmp_path, {})[0] == "x" * 48
    assert mode(path) == 0o600
    path.write_text("short\n")
    with pytest.raises(ConfigError, match="delete it"):
        stack_signing_key(tmp_path, {})


def test_the_token_file_is_private_replaced_whole_and_removed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stack up"):
        read_token(tmp_path)
    path = write_token(tmp_path, "a.b.c")
    assert mode(path) == 0o600 and read_token(tmp_path) == "a.b.c"
    path.chmod(0o644)
    write_token(tmp_path, "d.e.f")
    assert mode(path) == 0o600 and read_token(tmp_path) == "d.e.f"
    assert [p.name for p in tmp_path.iterdir()] == ["dev-token"]  # no temporary file left
    remove_token(tmp_path)
    remove_token(tmp_path)
    assert not path.exists()


def test_the_dashboard_link_carries_the_token_only_in_its_fragment() -> None:
    url = dashboard_url("http://127.0.0.1:8000/", "eyJh.eyJi-_.sig")
    assert url == "http://127.0.0.1:8000/#token=eyJh.eyJi-_.sig"
    parts = urlsplit(url)
    assert parts.path == "/" and parts.query == "" and parts.fragment == "token=eyJh.eyJi-_.sig"


def test_tools_sign_with_their_environments_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    first = isolated_env("127.0.0.1:1", "redis://x", "ns", Path("/tmp/x"))
    second = isolated_env("127.0.0.1:1", "redis://x", "ns", Path("/tmp/x"))
    assert len(first[KEY_ENV]) >= 32 and first[KEY_ENV] != second[KEY_ENV]
    token = issue_for_env(first, subject="bench", icbs=())
    auth = AuthSettings(jwt_secret=SecretStr(first[KEY_ENV]))
    principal = verify_token(auth, token, int(time.time()))
    assert principal.role == "national" and principal.subject == "bench"
    monkeypatch.setenv(KEY_ENV, "s" * 40)
    assert isolated_env("127.0.0.1:1", "redis://x", "ns", Path("/tmp/x"))[KEY_ENV] == "s" * 40
    with pytest.raises(ConfigError):
        issue_for_env({}, subject="nobody")


def test_the_development_token_lasts_a_working_day() -> None:
    from gapwatch.api.token_command import parse_ttl

    assert parse_ttl(dev_tokens.DEV_TOKEN_TTL) == 12 * 3600
    assert os.sep not in dev_tokens.TOKEN_FILE and os.sep not in dev_tokens.KEY_FILE
