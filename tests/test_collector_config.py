"""pantau-collector check-config: invalid configs are refused with file, line and key."""

from __future__ import annotations

import pytest

from collector.cli import main as collector_main
from collector.config import load_collector_config
from pantau.settings import ConfigError

VALID = """\
mqtt:
  host: 127.0.0.1
  port: 1883
influx:
  url: http://127.0.0.1:8086
  batch_size: 1000
http:
  listen: 127.0.0.1:9877
"""

INVALID = [
    ("unknown key", VALID + "colour: red\n", 9, "colour: unknown key"),
    ("bad url", VALID.replace("http://127.0.0.1:8086", "not a url"), 5, "influx.url"),
    ("zero batch", VALID.replace("batch_size: 1000", "batch_size: 0"), 6, "influx.batch_size"),
    ("bad listen", VALID.replace("127.0.0.1:9877", "everywhere"), 8, "http.listen"),
    (
        "bad client id",
        VALID.replace("  port: 1883\n", "  port: 1883\n  client_id: a/b\n"),
        4,
        "mqtt.client_id",
    ),
    (
        "token env unset",
        VALID.replace(
            "  batch_size: 1000\n", "  batch_size: 1000\n  token_env: PANTAU_NO_SUCH_VAR\n"
        ),
        4,
        "environment variable PANTAU_NO_SUCH_VAR is not set",
    ),
    (
        "token file and env",
        VALID.replace(
            "  batch_size: 1000\n",
            "  batch_size: 1000\n  token_env: PANTAU_TOKEN\n  token_file: /nonexistent\n",
        ),
        4,
        "token: give a file or an environment variable, not both",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_collector_config(tmp_path, text, line, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_collector_config(path)
    matching = [e for e in err.value.errors if fragment in e]
    assert matching, err.value.errors
    assert matching[0].startswith(f"{path}:{line}:"), matching[0]


def test_check_config_exit_codes(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    assert collector_main(["check-config", "--config", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID + "colour: red\n")
    assert collector_main(["check-config", "--config", str(bad)]) == 2
    assert f"{bad}:9: colour: unknown key" in capsys.readouterr().err


def test_token_from_file_is_never_printed(tmp_path, capsys):
    token = tmp_path / "token"
    token.write_text("tok-SECRET-123\n")
    token.chmod(0o600)
    path = tmp_path / "c.yaml"
    path.write_text(
        VALID.replace("  batch_size: 1000\n", f"  batch_size: 1000\n  token_file: {token}\n")
    )
    cfg = load_collector_config(path)
    assert cfg.influx.token == "tok-SECRET-123"
    assert "SECRET" not in repr(cfg) and "SECRET" not in str(cfg)
