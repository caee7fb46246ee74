"""deploy/install.sh into a scratch root (PANTAU_ROOT): what a technician's gateway would get.

One install of the agent from this checkout, a secret, a config edit, then a second run from a
changed copy of the checkout (an upgrade) and the collector beside it. Packages come from the
usual pip index (or PIP_FIND_LINKS / a cache, as configured on the machine); the test takes
about 30 s, most of it pip.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "deploy" / "install.sh"


def run(root: Path, *args: str, source: Path | None = None, stdin: str | None = None) -> str:
    env = {
        **os.environ,
        "PANTAU_ROOT": str(root),
        "PANTAU_PYTHON": sys.executable,
        # a gateway wants the bytecode compiled at install time (the service user cannot
        # write it); the test does not, and saves a third of pip's time
        "PANTAU_PIP_ARGS": "--no-compile",
    }
    if source is not None:
        env["PANTAU_SOURCE"] = str(source)
    result = subprocess.run(
        ["bash", str(INSTALL), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def ids(root: Path, user: str) -> tuple[int, int]:
    lines = [line.split(":") for line in (root / "etc/passwd").read_text().splitlines()]
    matches = [(int(f[2]), int(f[3])) for f in lines if f[0] == user]
    assert len(matches) == 1, f"{user} in {root}/etc/passwd: {matches}"
    return matches[0]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.servers  # runs install.sh (creates a venv, pip): tens of seconds
def test_install_then_upgrade_keeps_config_and_secrets(tmp_path: Path) -> None:
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers missing: apt-get install systemd")
    root = tmp_path / "root"
    venv = root / "opt/pantau/venv"
    etc = root / "etc/pantau"

    out = run(root, "agent")
    assert "pantau-agent installed" in out
    uid, gid = ids(root, "pantau-agent")
    version = subprocess.run(
        [str(venv / "bin/pantau-agent"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert version.startswith("pantau-agent ")
    unit = root / "etc/systemd/system/pantau-agent.service"
    wants = root / "etc/systemd/system/multi-user.target.wants/pantau-agent.service"
    assert unit.read_text() == (REPO / "deploy/systemd/pantau-agent.service").read_text()
    assert wants.is_symlink() and os.readlink(wants) == "/etc/systemd/system/pantau-agent.service"
    config = etc / "agent.yaml"
    assert config.read_text() == (REPO / "config/agent.example.yaml").read_text()
    assert mode(config) == 0o640
    if os.getuid() == 0:
        assert (config.stat().st_uid, config.stat().st_gid) == (0, gid)
    assert (root / "opt/pantau/share/doc/deploy.md").is_file()

    # The technician stores the MQTT password and writes the site's config.
    run(root, "secret", "agent", "mqtt-password", stdin="correct horse battery\n")
    password = etc / "mqtt-password"
    assert password.read_text() == "correct horse battery\n" and mode(password) == 0o600
    if os.getuid() == 0:
        assert (password.stat().st_uid, password.stat().st_gid) == (uid, gid)
    site_config = {
        "site": "kpg-ridge-01",
        "broker": {
            "host": "noc.example.net",
            "port": 8883,
            "username": "kpg-ridge-01",
            "password_file": str(password),
        },
        "devices": [{"name": "radio-1", "host": "10.20.0.2"}],
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
    }
    config.write_text("# edited on site\n" + yaml.safe_dump(site_config))
    edited = config.read_text()
    check = subprocess.run(
        [str(venv / "bin/pantau-agent"), "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "correct horse" not in check.stdout + check.stderr

    # Upgrade: run it again from a newer checkout.
    newer = tmp_path / "newer"
    shutil.copytree(
        REPO,
        newer,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", "tests", ".demo", ".*cache"
        ),
    )
    init = newer / "agent/__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.9.9+'))
    out = run(root, "agent", source=newer)
    assert "keeping" in out and "config is valid" in out
    version = subprocess.run(
        [str(venv / "bin/pantau-agent"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert "9.9.9+" in version
    assert config.read_text() == edited and mode(config) == 0o640
    assert password.read_text() == "correct horse battery\n" and mode(password) == 0o600
    assert ids(root, "pantau-agent") == (uid, gid)  # the same user, not a second one
    assert (root / "opt/pantau/share/examples/agent.example.yaml").is_file()

    # The collector beside it: its own user, unit and config.
    run(root, "collector")
    c_uid, c_gid = ids(root, "pantau-collector")
    assert c_uid != uid
    assert (
        root / "etc/systemd/system/multi-user.target.wants/pantau-collector.service"
    ).is_symlink()
    assert (etc / "collector.yaml").is_file() and config.read_text() == edited

    # The installed units verify against the installed programs (see tests/test_systemd.py).
    analyze = shutil.which("systemd-analyze")
    if analyze:
        shutil.copytree(
            "/usr/lib/systemd/system",
            root / "usr/lib/systemd/system",
            symlinks=True,
            dirs_exist_ok=True,
        )
        result = subprocess.run(
            [
                analyze,
                "verify",
                f"--root={root}",
                "pantau-agent.service",
                "pantau-collector.service",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
            result.stdout + result.stderr
        )


def test_refuses_bad_arguments(tmp_path: Path) -> None:
    env = {**os.environ, "PANTAU_ROOT": str(tmp_path)}
    for args in ([], ["both"], ["secret", "agent", "../etc/passwd"]):
        result = subprocess.run(
            ["bash", str(INSTALL), *args],
            env=env,
            input="x",
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode != 0, args
    assert not (tmp_path / "etc").exists() or not any((tmp_path / "etc").iterdir())
