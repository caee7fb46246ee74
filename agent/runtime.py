"""`pantau-agent run` validates its config in a short-lived process and keeps only the result.

Validating the YAML file (pydantic, with every error's file:line) loads about 10 MiB that a
running agent would keep for as long as it runs and never use again: pydantic-core's library
pages, its schema machinery, the models of the config and of 41 profiles, PyYAML
(docs/performance.md, Footprint). So `run` starts `python -I -c ... CONFIG` (main() below, on
this process's sys.path), which validates exactly as `check-config` does and writes the plain
objects of agent.config (or the list of errors) to its stdout, a pipe; the agent unpickles them
and never imports pydantic.

Secrets (communities, v3 keys, the MQTT password) are read by the validating process from their
files or the environment, as before, and travel in that pipe only: never through a file or the
command line. The pickle comes from a child of ours that ran our own code, so it is trusted like
the code itself. systemd's NOTIFY_SOCKET and WATCHDOG_* stay with the agent: the validating
process must not say READY for it.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

from agent.config import AgentConfig
from pantau.errors import ConfigError

_SYSTEMD = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
_CHILD = (
    "import sys; sys.path[:] = {path!r}\n"
    "from agent.runtime import main; sys.exit(main(sys.argv[1:]))"
)
"""The validating process imports from exactly this process's path, nothing else: isolated
(-I: no PYTHON* variables, no user site, and above all not the working directory, which
`python -m` would put first, so that a `yaml.py` or an `agent/` of another version wherever
`run` was started from would run there and be trusted here)."""


VALIDATE_TIMEOUT = 300.0
"""Seconds the validating process may take (3,000 devices take ~2 s here): a secret "file"
that is a FIFO nobody writes, or a hung NFS mount, must end in a clear failure (exit 1,
systemd restarts), not in an agent that never starts and a child left behind."""


class ValidatorFailed(RuntimeError):
    """The validating process ended without an answer (a bug there: its traceback is on
    stderr), or with one this process cannot read."""


def load_validated(path: Path, timeout: float = VALIDATE_TIMEOUT) -> AgentConfig:
    """The config at `path`, validated in a process of its own: the plain AgentConfig, or
    ConfigError with every problem (the same lines `check-config` prints)."""
    env = {k: v for k, v in os.environ.items() if k not in _SYSTEMD}
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _CHILD.format(path=sys.path), str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=env,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:  # run() has killed it
        raise ValidatorFailed(
            f"validating {path} took longer than {timeout:.0f} s (a secret file that blocks?)"
        ) from None
    if done.returncode != 0:
        raise ValidatorFailed(f"validating {path} failed (exit status {done.returncode})")
    try:
        answer = pickle.loads(done.stdout)  # our own child's output (module docstring)
    except Exception as exc:
        raise ValidatorFailed(f"validating {path}: unreadable answer ({exc})") from None
    match answer:
        case ("ok", AgentConfig() as cfg):
            return cfg
        case ("invalid", list() as errors):
            raise ConfigError(errors)
    raise ValidatorFailed(f"validating {path}: unexpected answer {type(answer).__name__}")


def main(argv: list[str]) -> int:
    """The validating process: one config path in, one pickled answer out on stdout."""
    from agent.config import load_agent_config

    if os.isatty(1):
        print(
            "agent.runtime writes a pickle (secrets included) for pantau-agent run", file=sys.stderr
        )
        return 2
    # The answer goes to a duplicate of fd 1; fd 1 itself (and sys.stdout) now lead to stderr,
    # so that nothing else written there, by Python or by a library's C code, can corrupt it.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    answer: tuple[str, object]
    try:
        answer = ("ok", load_agent_config(Path(argv[0])))
    except ConfigError as exc:
        answer = ("invalid", exc.errors)
    out.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
