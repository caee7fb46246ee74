"""Profile mistakes that used to pass check-config and break monitoring without a word.

Each bad profile or config is written into tmp_path and must be refused with the file, the line
and the key of the mistake; a profile no device can get is a warning that check-config and probe
print. Also: check-config and probe name the profiles each device uses, and the table of
documented metric names the agent checks against stays in step with docs/metrics.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.cli import main as agent_main
from agent.config import load_agent_config
from agent.probe import ProbeResult
from agent.profiles.model import DOCUMENTED, builtin_profiles, builtin_sources
from pantau.settings import ConfigError
from pantau.wire import Field, Group, Kind, SampleSet

HEAD = """site: lab
defaults: {timeout: 0.2, retries: 0, ping: false}
devices:
  - name: radio
    host: 127.0.0.1
    port: 9
"""


def profile(name: str, body: str, *, measurement: str = "signal") -> str:
    """One profile as a YAML list item (lines 1..n of the item; `- name:` is its first line)."""
    return f"  - name: {name}\n    measurement: {measurement}\n    scalars:\n{body}"


def scalar(text: str) -> str:
    return f"      - {{{text}}}\n"


OK = scalar("name: foo_db, oid: 1.3.6.1.4.1.32473.1.1.0")


@dataclass
class Case:
    """files: name -> text (written into tmp_path; agent.yaml is the config). The error must
    contain `where` (file:line) and `key`."""

    files: dict[str, str]
    where: str
    key: str
    also: list[str] = field(default_factory=list)  # more text the error must contain


CASES = {
    "duplicate name in two site files": Case(
        {
            "agent.yaml": HEAD + "profile_files: [a.yaml, b.yaml]\n",
            "a.yaml": "profiles:\n" + profile("acme", OK),
            "b.yaml": "# the same radio, copied\nprofiles:\n" + profile("acme", OK),
        },
        "b.yaml:3",
        "profiles[0].name",
        ["defined twice", "a.yaml:2"],
    ),
    "duplicate name in one file": Case(
        {
            "agent.yaml": HEAD + "profile_files: [a.yaml]\n",
            "a.yaml": "profiles:\n" + profile("acme", OK) + profile("acme", OK),
        },
        "a.yaml:6",
        "profiles[1].name",
        ["defined twice", "a.yaml:2"],
    ),
    "duplicate name in a file and inline": Case(
        {
            "agent.yaml": HEAD + "profile_files: [a.yaml]\nprofiles:\n" + profile("acme", OK),
            "a.yaml": "profiles:\n" + profile("acme", OK),
        },
        "agent.yaml:9",
        "profiles[0].name",
        ["defined twice", "a.yaml:2"],
    ),
    "site profile replaces a shipped one silently": Case(
        {"agent.yaml": HEAD + "profiles:\n" + profile("uhp", OK)},
        "agent.yaml:8",
        "profiles[0].name",
        ["shipped profile", "replaces: uhp"],
    ),
    "replaces names no shipped profile": Case(
        {
            "agent.yaml": HEAD
            + "profiles:\n  - name: acme\n    replaces: acme-old\n    measurement: signal\n"
            "    scalars:\n" + OK
        },
        "agent.yaml:9",
        "profiles[0].replaces",
        ["no shipped profile"],
    ),
    "a device names a replaced profile": Case(
        {
            "agent.yaml": HEAD.replace("    port: 9\n", "    port: 9\n    profiles: [uhp]\n")
            + "profiles:\n  - name: uhp-site\n    replaces: uhp\n    measurement: signal\n"
            "    scalars:\n" + OK
        },
        "agent.yaml:7",
        "devices[0].profiles[0]",
        ["replaced by 'uhp-site'", "agent.yaml:10"],
    ),
    "documented name as a counter": Case(
        {
            "agent.yaml": HEAD + "profile_files: [p.yaml]\n",
            "p.yaml": "profiles:\n"
            + profile(
                "acme",
                "      - name: esno_db\n        oid: 1.3.6.1.4.1.32473.1.1.0\n"
                "        kind: counter\n",
            ),
        },
        "p.yaml:7",
        "profiles[0].scalars[0].kind",
        ["esno_db is documented as a gauge in dB", "_esno_db_total"],
    ),
    "documented counter left a gauge": Case(
        {
            "agent.yaml": HEAD
            + "profiles:\n"
            + "  - name: acme\n    tables:\n      - measurement: interface\n"
            "        columns:\n          - {name: in_octets, oid: 1.3.6.1.4.1.32473.1.2.1}\n"
        },
        "agent.yaml:12",
        "profiles[0].tables[0].columns[0].kind",
        ["in_octets is documented as a counter"],
    ),
    "documented name with another unit": Case(
        {
            "agent.yaml": HEAD
            + "profiles:\n"
            + profile(
                "acme",
                "      - name: snr_db\n        oid: 1.3.6.1.4.1.32473.1.1.0\n        unit: dBm\n",
            )
        },
        "agent.yaml:13",
        "profiles[0].scalars[0].unit",
        ["snr_db is documented in dB", "not dBm"],
    ),
    "two site profiles give one field two kinds": Case(
        {
            "agent.yaml": HEAD + "profile_files: [a.yaml, b.yaml]\n",
            "a.yaml": "profiles:\n" + profile("acme-a", OK),
            "b.yaml": "profiles:\n"
            + profile(
                "acme-b",
                "      - name: foo_db\n        oid: 1.3.6.1.4.1.32473.2.1.0\n        kind: state\n",
            ),
        },
        "b.yaml:7",
        "profiles[0].scalars[0].kind",
        ["signal.foo_db is a state here but a gauge in profile 'acme-a'", "a.yaml:5"],
    ),
    "a site profile gives a shipped field another kind": Case(
        {
            "agent.yaml": HEAD
            + "profiles:\n"
            + profile("acme", scalar("name: modem_state, oid: 1.3.6.1.4.1.32473.1.1.0"))
        },
        "agent.yaml:11",
        "profiles[0].scalars[0].kind",
        ["signal.modem_state is a gauge here but a state in profile 'uhp'", "uhp.yaml:"],
    ),
    "scale written as a string": Case(
        {
            "agent.yaml": HEAD + "profile_files: [p.yaml]\n",
            "p.yaml": "profiles:\n"
            + profile(
                "acme",
                "      - name: foo_db\n        oid: 1.3.6.1.4.1.32473.1.1.0\n"
                '        scale: "0.1"\n',
            ),
        },
        "p.yaml:7",
        "profiles[0].scalars[0].scale",
        ["valid number"],
    ),
    "offset written as a string inline": Case(
        {
            "agent.yaml": HEAD
            + "profiles:\n"
            + profile("acme", scalar("name: foo_db, oid: 1.3.6.1.4.1.32473.1.1.0, offset: '3'"))
        },
        "agent.yaml:11",
        "profiles[0].scalars[0].offset",
        ["valid number"],
    ),
    "second arc 40 under 1": Case(
        {
            "agent.yaml": HEAD + "profile_files: [p.yaml]\n",
            "p.yaml": "profiles:\n"
            + profile("acme", "      - name: foo_db\n        oid: 1.40.1.0\n"),
        },
        "p.yaml:6",
        "profiles[0].scalars[0].oid",
        ["second arc must be below 40"],
    ),
    "arc above 32 bits": Case(
        {
            "agent.yaml": HEAD
            + "profiles:\n"
            + profile("acme", scalar("name: foo_db, oid: 1.3.6.1.4.1.4294967296.0"))
        },
        "agent.yaml:11",
        "profiles[0].scalars[0].oid",
        ["32-bit"],
    ),
    "match OID the encoder cannot send": Case(
        {
            "agent.yaml": HEAD + "profiles:\n  - name: acme\n    match:\n"
            "      sys_object_id: [0.45.1]\n    measurement: signal\n    scalars:\n" + OK
        },
        "agent.yaml:10",
        "profiles[0].match.sys_object_id[0]",
        ["second arc must be below 40"],
    ),
    "help on two lines": Case(
        {
            "agent.yaml": HEAD
            + "profiles:\n"
            + profile("acme", scalar(r'name: foo_db, oid: 1.3.6.1.4.1.32473.1.1.0, help: "a\nb"'))
        },
        "agent.yaml:11",
        "profiles[0].scalars[0].help",
        ["one line"],
    ),
}


def write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path / "agent.yaml"


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_mistake_is_an_error_with_file_line_and_key(tmp_path, case: Case):
    config = write(tmp_path, case.files)
    with pytest.raises(ConfigError) as exc:
        load_agent_config(config)
    text = "\n".join(exc.value.errors)
    line = next((e for e in exc.value.errors if case.where in e and case.key in e), None)
    assert line is not None, f"no error at {case.where} naming {case.key}:\n{text}"
    for more in case.also:
        assert more in line, f"{more!r} missing from: {line}"


def test_mistake_is_an_error_from_check_config(tmp_path, capsys):
    config = write(tmp_path, CASES["scale written as a string"].files)
    assert agent_main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'p.yaml'}:7: profiles[0].scalars[0].scale" in err


def test_replacing_a_shipped_profile_explicitly(tmp_path):
    body = scalar("name: snr_db, oid: 1.3.6.1.4.1.8000.22.2.1.0, scale: 0.1, unit: dB")
    text = HEAD + "profiles:\n  - name: uhp\n    replaces: uhp\n    match:\n"
    text += "      sys_object_id: [1.3.6.1.4.1.8000]\n    measurement: signal\n    scalars:\n"
    cfg = load_agent_config(write(tmp_path, {"agent.yaml": text + body}))
    (uhp,) = [p for p in cfg.devices[0].candidates if p.name == "uhp"]
    assert [s.name for s in uhp.scalars] == ["snr_db"]  # the site's, not the shipped one
    assert cfg.site_profiles == ("uhp",) and not cfg.warnings


def test_replacing_under_another_name_takes_the_shipped_one_out(tmp_path):
    text = HEAD + "profiles:\n  - name: uhp-site\n    replaces: uhp\n    match:\n"
    text += "      sys_object_id: [1.3.6.1.4.1.8000]\n    measurement: signal\n    scalars:\n"
    cfg = load_agent_config(write(tmp_path, {"agent.yaml": text + OK}))
    names = {p.name for p in cfg.devices[0].candidates}
    assert "uhp-site" in names and "uhp" not in names


def test_profile_directory_loads_every_yaml(tmp_path):
    (tmp_path / "profiles.d").mkdir()
    (tmp_path / "profiles.d" / "a.yaml").write_text("profiles:\n" + profile("acme", OK))
    (tmp_path / "profiles.d" / "b.yaml").write_text("profiles:\n" + profile("acme", OK))
    (tmp_path / "profiles.d" / "README").write_text("not a profile")
    with pytest.raises(ConfigError) as exc:
        load_agent_config(write(tmp_path, {"agent.yaml": HEAD + "profile_files: [profiles.d]\n"}))
    assert any("profiles.d/b.yaml:2" in e and "defined twice" in e for e in exc.value.errors)


def test_shipped_profiles_keep_the_rules():
    # Loading them checks every rule (a shipped profile that broke one would fail here).
    sources = builtin_sources()
    assert sources.keys() == builtin_profiles().keys()
    assert all(s.profile.replaces is None for s in sources.values())


# --- warnings and the per-device listing -------------------------------------------------


UNUSED = (
    HEAD.replace("    port: 9\n", "    port: 9\n    profiles: [system, if-mib]\n")
    + "profiles:\n"
    + "  - name: acme-radio\n    match: {sys_object_id: [1.3.6.1.4.1.32473]}\n"
    + "    measurement: signal\n    scalars:\n"
    + OK
    + profile("acme-modem", scalar("name: bar_db, oid: 1.3.6.1.4.1.32473.2.1.0"))
)


def test_check_config_warns_about_a_profile_no_device_gets(tmp_path, capsys):
    config = write(tmp_path, {"agent.yaml": UNUSED})
    assert agent_main(["check-config", "--config", str(config)]) == 0  # a warning, not an error
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, err
    assert f"{config}:9: profiles[0].name: profile 'acme-radio' matches no device" in warnings[0]
    assert "no detection" in warnings[0]
    assert f"{config}:14: profiles[1].name: profile 'acme-modem' matches no device" in warnings[1]
    assert "no match" in warnings[1]
    assert "  radio (127.0.0.1:9): system, if-mib\n" in out


def test_check_config_lists_the_profiles_of_each_device(tmp_path, capsys):
    devices = HEAD + "  - name: modem\n    host: 127.0.0.2\n    profiles: [system, acme-modem]\n"
    text = devices + "ping_targets:\n  - {name: hub, host: 192.0.2.1}\n" + UNUSED[len(HEAD) :]
    text = text.replace("    profiles: [system, if-mib]\n", "")
    config = write(tmp_path, {"agent.yaml": text})
    assert agent_main(["check-config", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err, err
    n = len([p for p in builtin_profiles().values() if p.match is not None]) + 1
    assert re.search(
        rf"^  radio \(127\.0\.0\.1:9\): system, if-mib \+ detection among {n} profiles "
        r"by sysObjectID/sysDescr \(the site's: acme-radio\)$",
        out,
        re.M,
    ), out
    assert "\n  modem (127.0.0.2:161): system, acme-modem\n" in out
    assert "\n  hub (192.0.2.1): ping only\n" in out


def test_probe_prints_the_warnings_and_the_profiles(tmp_path, capsys):
    config = write(tmp_path, {"agent.yaml": UNUSED})
    rc = agent_main(["probe", "--config", str(config)])
    out, err = capsys.readouterr()
    assert rc == 1  # nothing answers on port 9
    assert "profile 'acme-radio' matches no device" in err
    assert "profile 'acme-modem' matches no device" in err
    lines = out.splitlines()
    assert lines[0].startswith("== radio (127.0.0.1:9) DOWN")
    assert lines[1] == "   profiles: system, if-mib"


def test_probe_json_carries_help(tmp_path):
    cfg = load_agent_config(write(tmp_path, {"agent.yaml": HEAD}))
    device = cfg.devices[0]
    sample = SampleSet(
        site="lab",
        device="radio",
        seq=1,
        ts_ms=0,
        duration_ms=1,
        up=True,
        reason="",
        groups=[Group("system", {}, [Field("uptime_seconds", Kind.GAUGE, 5.0)])],
    )
    result = ProbeResult(device, sample, ("system",))
    (row,) = result.rows()
    system = builtin_profiles()["system"]
    want = next(s.help for s in system.scalars if s.name == "uptime_seconds")
    assert want and row["help"] == want
    assert result.as_table().splitlines()[1] == "   profiles: system"


# --- the documented names the agent checks, and docs/metrics.md ---------------------------


def documented_table(repo_root: Path) -> dict[str, tuple[str, str]]:
    """name -> (kind, unit cell) from metrics.md's 'names alerts and dashboards rely on'."""
    text = (repo_root / "docs" / "metrics.md").read_text()
    section = text.split("## The names alerts and dashboards rely on", 1)[1].split("\n## ", 1)[0]
    out: dict[str, tuple[str, str]] = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        unit = cells[2]
        kind = {"counter": "counter", "state": "state", "text": "info"}.get(unit, "gauge")
        for name in re.findall(r"`([a-z0-9_]+)`", cells[0]):
            out[name] = (kind, unit)
    return out


def test_documented_names_match_docs_metrics(repo_root):
    table = documented_table(repo_root)
    assert table.keys() == DOCUMENTED.keys()
    for name, (kind, cell) in table.items():
        want_kind, want_unit = DOCUMENTED[name]
        assert want_kind == kind, name
        if kind == "gauge":
            units = {u.strip() for u in re.split(r"[,/]\s|\s/\s", cell)}
            units = {"" if u in ("0/1", "0–1") else u for u in units} | (
                {""} if cell in ("0/1", "s, 0–1") else set()
            )
            assert want_unit in units | {cell}, (name, cell, want_unit)
