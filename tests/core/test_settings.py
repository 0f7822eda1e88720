"""Settings: the registry against its documentation, precedence, `_FILE` secrets, bad values,
and the `beatfeeds settings` command."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from beatfeeds.cli import main
from beatfeeds.core.errors import ConfigurationError
from beatfeeds.core.settings import SETTINGS, load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
REGISTRY = [f"BEATFEEDS_{s.name.upper()}" for s in SETTINGS]


def documented_sections() -> dict[str, str]:
    """{heading: text up to the next heading} for every `### ` heading of the docs."""
    text = DOCS.read_text(encoding="utf-8")
    parts = re.split(r"^(#{1,3} .*)$", text, flags=re.M)
    sections: dict[str, str] = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        if heading.startswith("### "):
            name = heading[4:].strip()
            assert name not in sections, f"{name} is documented twice"
            sections[name] = body
    return sections


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"BEATFEEDS_INSTANCE_PATH": str(tmp_path / "instance"), **extra}


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "beatfeeds.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---- the registry and docs/configuration.md -------------------------------------------------
def test_docs_headings_are_exactly_the_registry():
    headings = list(documented_sections())
    assert sorted(headings) == sorted(REGISTRY), (
        f"undocumented: {sorted(set(REGISTRY) - set(headings))}; "
        f"documented but not in SETTINGS: {sorted(set(headings) - set(REGISTRY))}"
    )


def test_docs_give_each_default():
    sections = documented_sections()
    for s in SETTINGS:
        default = ",".join(s.default) if isinstance(s.default, list) else str(s.default)
        if default:
            assert f"`{default}`" in sections[f"BEATFEEDS_{s.name.upper()}"], s.name


def test_docs_name_every_file_variant_and_the_config_file():
    text = DOCS.read_text(encoding="utf-8")
    assert "BEATFEEDS_CONFIG" in text
    for s in SETTINGS:
        if s.file_variant:
            assert f"BEATFEEDS_{s.name.upper()}_FILE" in text, s.name


# ---- precedence -------------------------------------------------------------------------------
def test_precedence_default_then_file_then_env_then_overrides(tmp_path):
    toml = write_toml(
        tmp_path,
        'department_name = "From the file"\n'
        "feed_max_entries = 20\n"
        "publication_delay = 10\n"
        'base_url = "https://file.example.org/"\n',
    )
    env = base_env(
        tmp_path,
        BEATFEEDS_CONFIG=str(toml),
        BEATFEEDS_FEED_MAX_ENTRIES="30",
        BEATFEEDS_PUBLICATION_DELAY="20",
    )
    s = load_settings({"publication_delay": 45, "TESTING": True}, environ=env)

    assert (s.session_lifetime, s.origin("session_lifetime")) == (480, "default")
    assert (s.department_name, s.origin("department_name")) == ("From the file", "file")
    assert s.base_url == "https://file.example.org"  # trailing slash dropped
    assert (s.feed_max_entries, s.origin("feed_max_entries")) == (30, "env")
    assert (s.publication_delay, s.origin("publication_delay")) == (45, "overrides")


def test_defaults_without_file_or_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    for setting in SETTINGS:
        if setting.name not in ("instance_path", "database_url"):
            assert getattr(s, setting.name) == setting.default, setting.name
        assert s.origin(setting.name) == "default"
    # Relative instance paths resolve against the working directory; the database sits in it.
    assert Path(s.instance_path) == tmp_path.resolve() / "instance"
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'instance' / 'beatfeeds.sqlite3'}"


def test_os_environ_is_read_when_no_environ_is_given(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("BEATFEEDS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("BEATFEEDS_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("BEATFEEDS_DEPARTMENT_NAME", "Example Police")
    assert load_settings().department_name == "Example Police"


def test_override_keys_may_carry_the_prefix_and_any_case(tmp_path):
    s = load_settings(
        {"BEATFEEDS_FEED_MAX_ENTRIES": 7, "Department_Name": "X"}, environ=base_env(tmp_path)
    )
    assert s.feed_max_entries == 7
    assert s.department_name == "X"


def test_lists_from_env_are_comma_separated_and_from_toml_are_arrays(tmp_path):
    env = base_env(tmp_path, BEATFEEDS_SUPPRESSED_CATEGORIES=" juvenile , sexual-offense,")
    assert load_settings(environ=env).suppressed_categories == ["juvenile", "sexual-offense"]
    toml = write_toml(tmp_path, 'suppressed_categories = ["death"]\n')
    s = load_settings(environ=base_env(tmp_path, BEATFEEDS_CONFIG=str(toml)))
    assert s.suppressed_categories == ["death"]
    s = load_settings(environ=base_env(tmp_path, BEATFEEDS_SUPPRESSED_CATEGORIES=""))
    assert s.suppressed_categories == []  # an empty value suppresses nothing


def test_toml_keys_are_case_insensitive(tmp_path):
    toml = write_toml(tmp_path, 'TIMEZONE = "America/Chicago"\n')
    s = load_settings(environ=base_env(tmp_path, BEATFEEDS_CONFIG=str(toml)))
    assert s.timezone == "America/Chicago"
    assert s.tz.key == "America/Chicago"


# ---- _FILE secrets ----------------------------------------------------------------------------
def test_secrets_can_be_read_from_files(tmp_path):
    key_file = tmp_path / "secret_key.txt"
    key_file.write_text("key-from-a-file\n")
    db_file = tmp_path / "database_url.txt"
    db_file.write_text(f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}\n")
    env = base_env(
        tmp_path,
        BEATFEEDS_SECRET_KEY_FILE=str(key_file),
        BEATFEEDS_DATABASE_URL_FILE=str(db_file),
    )
    s = load_settings(environ=env)
    assert s.secret_key == "key-from-a-file"  # trailing newline stripped
    assert s.database_url == f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"
    assert s.origin("secret_key") == s.origin("database_url") == "env file"


def test_a_missing_secret_file_is_a_configuration_error(tmp_path):
    env = base_env(tmp_path, BEATFEEDS_SECRET_KEY_FILE=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigurationError, match="BEATFEEDS_SECRET_KEY_FILE"):
        load_settings(environ=env)


def test_only_secrets_have_file_variants(tmp_path):
    elsewhere = tmp_path / "base_url.txt"
    elsewhere.write_text("https://ignored.example.org")
    s = load_settings(environ=base_env(tmp_path, BEATFEEDS_BASE_URL_FILE=str(elsewhere)))
    assert s.base_url == "http://127.0.0.1:8000"
    assert {s.name for s in SETTINGS if s.file_variant} <= {s.name for s in SETTINGS if s.secret}


# ---- bad values -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("colour = 'blue'\n", {}, "unknown setting 'colour'"),
        ("[beatfeeds]\nbase_url = 'x'\n", {}, "unknown setting 'beatfeeds'"),
        ("publication_delay = \n", {}, "BEATFEEDS_CONFIG="),
        ("publication_delay = 'soon'\n", {}, "publication_delay"),
        ("publication_delay = true\n", {}, "publication_delay"),
        ("feed_max_entries = 2.5\n", {}, "feed_max_entries"),
        ("tag_authority = ['example.org', '2026']\n", {}, "tag_authority"),
        (None, {"BEATFEEDS_SESSION_LIFETIME": "8h"}, "session_lifetime from BEATFEEDS_SESSION"),
        (None, {"BEATFEEDS_PUBLICATION_DELAY": "sixty"}, "publication_delay"),
        (None, {"BEATFEEDS_PUBLICATION_DELAY": "-5"}, "publication_delay"),
        (None, {"BEATFEEDS_FEED_MAX_ENTRIES": "0"}, "feed_max_entries"),
        (None, {"BEATFEEDS_TIMEZONE": "Pacific/Atlantis"}, "unknown time zone"),
        (None, {"BEATFEEDS_TIMEZONE": ""}, "unknown time zone"),
        (None, {"BEATFEEDS_TAG_AUTHORITY": "feeds.example.org"}, "tag_authority"),
        (None, {"BEATFEEDS_SUPPRESSED_CATEGORIES": "juvenile,sexual-offence"}, "sexual-offence"),
        (None, {"BEATFEEDS_LOG_LEVEL": "LOUD"}, "log_level"),
    ],
)
def test_bad_values_are_configuration_errors(tmp_path, toml, env, message):
    environ = base_env(tmp_path, **env)
    if toml is not None:
        environ["BEATFEEDS_CONFIG"] = str(write_toml(tmp_path, toml))
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        load_settings(environ=environ)


def test_a_missing_config_file_is_a_configuration_error(tmp_path):
    env = base_env(tmp_path, BEATFEEDS_CONFIG=str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigurationError, match="missing.toml"):
        load_settings(environ=env)


def test_bad_overrides_are_configuration_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="overrides"):
        load_settings({"feed_max_entries": "many"}, environ=base_env(tmp_path))


def test_log_level_is_normalised(tmp_path):
    s = load_settings(environ=base_env(tmp_path, BEATFEEDS_LOG_LEVEL="debug"))
    assert s.log_level == "DEBUG"


# ---- `beatfeeds settings` ---------------------------------------------------------------------
def printed_settings(output: str) -> dict[str, tuple[str, str]]:
    """`BEATFEEDS_NAME=value\t# origin` lines -> {name: (value, origin)}."""
    out = {}
    for line in output.splitlines():
        assignment, _, origin = line.partition("\t# ")
        name, _, value = assignment.partition("=")
        out[name] = (value, origin)
    return out


def test_settings_command_masks_the_secret_key_and_database_password(runner):
    url = "postgresql+psycopg://beatfeeds:hunter2-db@db.internal:5432/beatfeeds"
    result = runner.invoke(main, ["settings"], env={"BEATFEEDS_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert "test-secret-key" not in result.output
    assert "hunter2-db" not in result.output
    shown = printed_settings(result.output)
    assert list(shown) == REGISTRY
    assert shown["BEATFEEDS_SECRET_KEY"] == ("********", "env")
    assert shown["BEATFEEDS_DATABASE_URL"] == (
        "postgresql+psycopg://beatfeeds:***@db.internal:5432/beatfeeds",
        "env",
    )
    assert shown["BEATFEEDS_PUBLICATION_DELAY"] == ("60", "default")


def test_settings_command_masks_passwords_given_as_url_parameters_and_files(runner, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("filed-secret-key\n")
    url = "postgresql+psycopg://beatfeeds@db.internal/beatfeeds?password=hunter2-query"
    result = runner.invoke(
        main,
        ["settings"],
        env={
            "BEATFEEDS_DATABASE_URL": url,
            "BEATFEEDS_SECRET_KEY": None,
            "BEATFEEDS_SECRET_KEY_FILE": str(key_file),
        },
    )
    assert result.exit_code == 0, result.output
    assert "hunter2-query" not in result.output
    assert "filed-secret-key" not in result.output
    assert printed_settings(result.output)["BEATFEEDS_SECRET_KEY"] == ("********", "env file")


def test_settings_command_reports_bad_configuration_without_a_traceback(runner):
    result = runner.invoke(main, ["settings"], env={"BEATFEEDS_TIMEZONE": "Mars/Olympus"})
    assert result.exit_code == 1
    assert "unknown time zone 'Mars/Olympus'" in result.output
    assert "Traceback" not in result.output
