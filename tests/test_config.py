"""Configuration: validated once, every problem a one-line error naming the key, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from canonical.errors import ConfigError
from pipeline.config import load, parse, secrets
from tests.support import cli

GOOD: dict[str, Any] = {
    "database": {"url": "sqlite:///x.db"},
    "sources": {"rx": {"kind": "prescrypto", "base_url": "http://127.0.0.1:1/prescrypto", "token": "${TOK}"}},
}


def with_source(**changes: object) -> dict:
    return {**GOOD, "sources": {"rx": {**GOOD["sources"]["rx"], **changes}}}


def test_interpolates_and_applies_defaults():
    config = parse(GOOD, {"TOK": "secret-1"})
    source = config.sources["rx"]
    assert source.token.get_secret_value() == "secret-1"
    assert "secret-1" not in repr(config)
    assert (source.page_size, source.schedule, source.streams) == (100, "*/15 * * * *", None)


def test_default_after_colon_dash():
    config = parse(with_source(token="${UNSET_VAR_X:-fallback}"), {})
    assert config.sources["rx"].token.get_secret_value() == "fallback"


def test_postgres_url_gets_the_shipped_driver():
    config = parse({**GOOD, "database": {"url": "postgresql://u@h/db"}}, {"TOK": "t"})
    assert config.database.url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("raw", "environ", "message"),
    [
        (GOOD, {}, "sources.rx.token: environment variable TOK is not set"),
        (with_source(tokn="x"), {"TOK": "t"}, "sources.rx.tokn: unknown key"),
        ({**GOOD, "databse": {}}, {"TOK": "t"}, "databse: unknown key"),
        (with_source(base_url="not a url"), {"TOK": "t"}, "sources.rx.base_url: "),
        (with_source(kind="fhir"), {"TOK": "t"}, "sources.rx.kind: "),
        (
            with_source(continuation_param="next"),
            {"TOK": "t"},
            "sources.rx: continuation_param applies to kind particle",
        ),
        (with_source(kind="particle", ssn_hash_key="${SSN_KEY}"), {"TOK": "t"}, "sources.rx.ssn_hash_key: environment"),
        (
            with_source(kind="particle", ssn_hash_key="short"),
            {"TOK": "t"},
            "sources.rx.ssn_hash_key: must be at least 16",
        ),
        (  # the sandbox's key, which anyone can read, as it once stood in config.yaml
            with_source(kind="particle", ssn_hash_key="${PARTICLE_SSN_KEY:-sandbox-only-ssn-hash-key}"),
            {"TOK": "t"},
            "sources.rx.ssn_hash_key: is a key published with patientsync's sandbox",
        ),
        (with_source(kind="gauges", streams=["gauge"]), {"TOK": "t"}, "sources.rx.streams: unknown stream 'gauge'"),
        (
            with_source(kind="gauges", streams=["gauges"]),
            {"TOK": "t"},
            "sources.rx.streams: 'gauges' makes one request per stored 'patients' record, so 'patients' must be",
        ),
        (with_source(auth_header="X Token"), {"TOK": "t"}, "sources.rx.auth_header: "),
        (with_source(schedule="every day"), {"TOK": "t"}, "sources.rx.schedule: 'every day' is not a cron"),
        (with_source(page_size=0), {"TOK": "t"}, "sources.rx.page_size: "),
        (with_source(max_response_bytes=100), {"TOK": "t"}, "sources.rx.max_response_bytes: "),
        (with_source(deadline=0), {"TOK": "t"}, "sources.rx.deadline: "),
        (with_source(streams=["patients", "bills"]), {"TOK": "t"}, "sources.rx.streams: unknown stream 'bills'"),
        ({**GOOD, "database": {"url": "mysql://x/y"}}, {"TOK": "t"}, "database.url: 'mysql' is not supported"),
        ({"database": {"url": "sqlite:///x.db"}}, {}, "sources: required"),
        ({**GOOD, "identity": {"match_threshold": 0.6, "review_threshold": 0.8}}, {"TOK": "t"}, "identity: "),
        ({**GOOD, "identity": {"hash_key": "short"}}, {"TOK": "t"}, "identity.hash_key: must be at least 16"),
        ({**GOOD, "console": {"token": "short"}}, {"TOK": "t"}, "console.token: at least 16 characters"),
        ({**GOOD, "console": {"port": 1}}, {"TOK": "t"}, "console.port"),
        ({**GOOD, "identity": {"match_treshold": 0.9}}, {"TOK": "t"}, "identity.match_treshold: unknown key"),
        ({**GOOD, "identity": {"match_threshold": 1.5}}, {"TOK": "t"}, "identity.match_threshold: "),
    ],
)
def test_errors_name_the_key(raw: dict, environ: dict, message: str):
    with pytest.raises(ConfigError) as caught:
        parse(raw, environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_kind_is_accepted_with_its_options():
    config = parse(
        {
            "sources": {
                "pr": {
                    "kind": "profiles",
                    "base_url": "http://h/profiles",
                    "token": "t",
                    "auth_header": "X-Api-Key",
                    "auth_scheme": "",
                },
                "ga": {
                    "kind": "gauges",
                    "base_url": "http://h/gauges",
                    "token": "t",
                    "streams": ["gauges", "patients"],
                },
                "pa": {
                    "kind": "particle",
                    "base_url": "http://h/particle",
                    "token": "t",
                    "concurrency": 4,
                    "continuation_param": "cursor",
                    "ssn_hash_key": "${SSN_KEY}",
                },
            }
        },
        {"SSN_KEY": "k" * 32},
    )
    particle = config.sources["pa"]
    assert (particle.continuation_param, particle.concurrency) == ("cursor", 4)
    assert particle.ssn_hash_key is not None and "k" * 32 not in repr(config)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load(tmp_path / "nope.yaml")


def test_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    file = tmp_path / "elsewhere.yaml"
    file.write_text("sources:\n  rx: {kind: prescrypto, base_url: 'http://h/', token: t}\n")
    monkeypatch.setenv("PATIENTSYNC_CONFIG", str(file))
    assert list(load().sources) == ["rx"]


def test_cli_reports_one_line_and_exit_2(tmp_path: Path):
    file = tmp_path / "bad.yaml"
    file.write_text("sources:\n  rx:\n    kind: prescrypto\n    base_url: http://h/\n    token: t\n    tokn: x\n")
    proc = cli("--config", str(file), "sync")
    assert proc.returncode == 2
    assert "sources.rx.tokn: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_yaml_errors_say_where_without_quoting_the_line(tmp_path: Path):
    file = tmp_path / "broken.yaml"
    file.write_text("sources:\n  rx:\n    token: tok-LIVE-9f8e7d6c: x\n")
    with pytest.raises(ConfigError) as caught:
        load(file)
    assert "not valid YAML at line 3" in str(caught.value)
    assert "tok-LIVE" not in str(caught.value)


def test_a_malformed_database_url_is_not_echoed():
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, "database": {"url": "postgres ql://u:Sup3rSecret@h/db"}}, {"TOK": "t"})
    assert "database.url: not a database URL" in str(caught.value)
    assert "Sup3rSecret" not in str(caught.value)


def test_an_unset_ssn_hash_key_keeps_no_hash_and_says_so_once(sandbox, sqlite_url):
    from structlog.testing import capture_logs

    from pipeline.sync.runner import INCREMENTAL
    from tests.support import engine_for, make_config, particle_source, run

    config = make_config(sqlite_url, {"pa": particle_source(sandbox, ssn_hash_key="${PARTICLE_SSN_KEY:-}")})
    assert config.sources["pa"].ssn_hash_key is None
    engine = engine_for(config)
    with capture_logs() as captured:
        run(config, engine, INCREMENTAL)
        run(config, engine, INCREMENTAL)
    said = [e for e in captured if e["event"].startswith("no ssn_hash_key")]
    assert len(said) == 1 and said[0]["source"] == "pa"
    from tests.support import rows

    payloads = str(rows(engine, "SELECT payload FROM source_record"))
    assert "ssn_last4" in payloads and "ssn_hmac" not in payloads


@pytest.mark.parametrize(
    ("raw", "environ", "echoed"),
    [
        (with_source(streams=["${TOK}"]), {"TOK": "tok-7f3a9c-secret"}, "tok-7f3a9c-secret"),
        (with_source(schedule="${CRON}"), {"TOK": "t", "CRON": "every-tok-99 day"}, "every-tok-99"),
        (with_source(kind="${KIND}"), {"TOK": "t", "KIND": "secret-kind-77"}, "secret-kind-77"),
        (with_source(streams=["${STREAM:-fallback-secret-1}"]), {"TOK": "t"}, "fallback-secret-1"),
    ],
)
def test_errors_never_echo_a_value_that_came_from_a_variable(raw, environ, echoed):
    with pytest.raises(ConfigError) as caught:
        parse(raw, environ)
    message = str(caught.value)
    assert echoed not in message and message.startswith("sources.rx."), message


def test_yaml_errors_do_not_quote_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("sources:\n  rx:\n    token: *tok-5c1d-secret-alias\n")
    with pytest.raises(ConfigError) as caught:
        load(path, {})
    assert "tok-5c1d-secret-alias" not in str(caught.value) and "line 3" in str(caught.value)


def test_the_identity_hash_key_is_every_hashing_sources_key_and_a_secret():
    from pipeline.config import secrets

    raw = {
        **GOOD,
        "sources": {
            **GOOD["sources"],
            "pa": {"kind": "particle", "base_url": "http://127.0.0.1:1/p", "token": "t", "ssn_hash_key": "k" * 20},
        },
        "identity": {"hash_key": "${IDENTITY_KEY}"},
    }
    config = parse(raw, {"TOK": "t", "IDENTITY_KEY": "one-key-for-every-source"})
    assert config.sources["pa"].ssn_key() == b"one-key-for-every-source"  # it wins over the source's own
    assert "one-key-for-every-source" in secrets(config)
    assert parse(GOOD, {"TOK": "t"}).identity.match_threshold == 0.99  # the defaults without an identity block


def test_environment_overrides_any_key_whatever_its_case():
    raw = {
        "database": {"url": "sqlite:///file.db"},
        "sources": {"demo-rx": {"kind": "prescrypto", "base_url": "http://127.0.0.1:1/p", "token": "in-the-file"}},
    }
    config = parse(
        raw,
        {
            "PATIENTSYNC__DATABASE__URL": "sqlite:///env.db",
            "patientsync__Sources__DEMO_RX__token": "0042-from-env",  # digits stay text: the leading zeros stay
            "PATIENTSYNC__SOURCES__DEMO_RX__PAGE_SIZE": "50",
            "PATIENTSYNC__SOURCES__DEMO_RX__STREAMS": "[patients]",
            "PATIENTSYNC__IDENTITY__MATCH_THRESHOLD": "0.95",  # a section the file does not have
            "PATIENTSYNC_CONFIG": "not-an-override.yaml",
        },
    )
    source = config.sources["demo-rx"]
    assert config.database.url == "sqlite:///env.db"
    assert (source.token.get_secret_value(), source.page_size, source.streams) == ("0042-from-env", 50, ["patients"])
    assert config.identity.match_threshold == 0.95
    assert raw["database"]["url"] == "sqlite:///file.db"  # the file's own values are not changed in place


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PATIENTSYNC__DATABASE__URL": "mysql://u:hunter22@h/d"}, "database.url: the value of "),
        ({"PATIENTSYNC__SOURCES__RX__PAGE_SIZE": "hunter22"}, "sources.rx.page_size: the value of "),
        ({"PATIENTSYNC__SOURCES__RX__TOKN": "hunter22"}, "sources.rx.tokn: the value of "),
        ({"PATIENTSYNC__SOURCES__NOPE__TOKEN": "hunter22"}, "PATIENTSYNC__SOURCES__NOPE__TOKEN: no source 'nope'"),
        ({"PATIENTSYNC__DATABASE__URL__X": "hunter22"}, "PATIENTSYNC__DATABASE__URL__X: database.url is a value"),
        ({"PATIENTSYNC__SOURCES____TOKEN": "hunter22"}, "PATIENTSYNC__SOURCES____TOKEN: not a configuration key"),
        ({"PATIENTSYNC__SOURCES__RX__STREAMS": "[hunter22"}, "PATIENTSYNC__SOURCES__RX__STREAMS: not a valid YAML"),
    ],
)
def test_an_override_error_names_the_variable_never_its_value(environ, message):
    with pytest.raises(ConfigError) as raised:
        parse(GOOD, {"TOK": "t", **environ})
    said = str(raised.value)
    assert said.startswith(message) and "hunter22" not in said
    (variable,) = environ
    assert variable in said


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        # a part of a YAML value, quoted by a later check
        ({"PATIENTSYNC__SOURCES__RX__STREAMS": "[patients, hunter22-secret]"}, "sources.rx.streams: the value"),
        ({"PATIENTSYNC__SOURCES__RX__STREAMS": "[ab]"}, "sources.rx.streams: the value"),  # short
        ({"PATIENTSYNC__SOURCES__RX__SCHEDULE": "密码 * * * *"}, "sources.rx.schedule: the value"),  # not ASCII
        ({"PATIENTSYNC__IDENTITY": "{hunter22: 1}"}, "identity: the value"),  # a key inside the value
        ({"PATIENTSYNC__IDENTITY__REVIEW_THRESHOLD": "0.995"}, "identity: review_threshold must not be above"),
        (
            {"PATIENTSYNC__EXPORT__FHIR__IDENTIFIER_SYSTEMS": '{rx: {uid: "hunter22 secret"}}'},
            "export.fhir.identifier_systems: ",
        ),
        ({"PATIENTSYNC__SOURCES__RX__SCHEDULE": "* * * * hunter22secret"}, "sources.rx.schedule: "),  # a fragment
        ({"PATIENTSYNC__SOURCES__RX__CONTINUATION_PARAM": "hunter22"}, "sources.rx: continuation_param applies"),
    ],
)
def test_no_part_of_an_override_is_echoed_by_a_later_check(environ, message):
    with pytest.raises(ConfigError) as raised:
        parse(GOOD, {"TOK": "t", **environ})
    said = str(raised.value)
    (variable,) = environ
    assert said.startswith(message) and variable in said
    assert not any(part in said for part in ("hunter", "secret", "'ab'", "密码"))


def test_an_override_stands_in_for_an_unset_variable_and_fills_an_empty_section():
    raw = {**GOOD, "identity": None}  # `identity:` left empty in the file
    config = parse(
        raw,
        {"PATIENTSYNC__SOURCES__RX__TOKEN": "from-env", "PATIENTSYNC__IDENTITY__BLOCK_BOUND": "7"},  # TOK unset
    )
    assert config.sources["rx"].token.get_secret_value() == "from-env"
    assert config.identity.block_bound == 7
    with pytest.raises(ConfigError, match="TOK is not set"):
        parse(GOOD, {})
    # A value from the environment is taken as it is, never interpolated.
    assert parse(GOOD, {"PATIENTSYNC__SOURCES__RX__TOKEN": "a${TOK}b"}).sources["rx"].token.get_secret_value() == (
        "a${TOK}b"
    )


def test_a_new_key_naming_a_source_takes_the_sources_spelling():
    raw = {**GOOD, "sources": {"Demo-RX": GOOD["sources"]["rx"]}}
    config = parse(
        raw, {"TOK": "t", "PATIENTSYNC__EXPORT__FHIR__IDENTIFIER_SYSTEMS__DEMO_RX__UID": "https://rx.example/uid"}
    )
    assert config.export.fhir.identifier_systems == {"Demo-RX": {"uid": "https://rx.example/uid"}}


def test_the_console_token_is_optional_a_secret_and_set_from_the_environment():
    assert parse({**GOOD, "console": {"token": "${CONSOLE_TOKEN:-}"}}, {"TOK": "t"}).console.token is None
    config = parse(GOOD, {"TOK": "t", "PATIENTSYNC__CONSOLE__TOKEN": "c" * 20})
    assert config.console.token is not None and config.console.token.get_secret_value() == "c" * 20
    assert "c" * 20 in secrets(config) and "c" * 20 not in repr(config)
