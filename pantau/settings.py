"""Strict YAML config loading shared by agent and collector: every error names file, line and key.

A technician editing a config on a site gateway over a slow link needs the whole list of mistakes
at once, each pointing at the line to fix. PyYAML's node tree gives the lines; pydantic gives every
validation error with its key path; this module joins the two. Secrets are read here from files or
environment variables and are never echoed back in an error.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, Literal, TypeVar

import pydantic
import yaml

# Both defined without pydantic (the running agent holds secrets and catches ConfigError).
from pantau.errors import ConfigError as ConfigError
from pantau.secret import Secret as Secret

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=pydantic.BaseModel)


class StrictModel(pydantic.BaseModel):
    """Base for config objects: unknown keys are errors, objects are immutable once loaded."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


class LineMap:
    """Maps key paths of a YAML document to 1-based line numbers."""

    def __init__(self) -> None:
        self._lines: dict[Loc, int] = {}

    def add(self, loc: Loc, line: int) -> None:
        self._lines.setdefault(loc, line)

    def line(self, loc: Loc) -> int:
        """The line of `loc`, or of its closest ancestor that has one (e.g. for a missing key)."""
        loc = tuple(loc)
        while loc:
            if loc in self._lines:
                return self._lines[loc]
            loc = loc[:-1]
        return self._lines.get((), 1)


def _walk(node: yaml.Node, loc: Loc, lines: LineMap, path: str, errors: list[str]) -> None:
    lines.add(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                errors.append(
                    f"{path}:{key_node.start_mark.line + 1}: {format_loc((*loc, key))}: "
                    "duplicate key"
                )
            seen.add(key)
            lines.add((*loc, key), key_node.start_mark.line + 1)
            _walk(value_node, (*loc, key), lines, path, errors)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines, path, errors)


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 also reads on/off/yes/no as booleans,
    which turns a state named `off` or a site named `no` into False behind the operator's back."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_yaml(path: Path) -> tuple[Any, LineMap]:
    """Parse a YAML file into plain data plus a line map; ConfigError on syntax errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text: {exc.reason}"]) from None
    lines = LineMap()
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([f"{where}: YAML syntax error: {exc.problem}"]) from None
    if node is None:
        return {}, lines
    errors: list[str] = []
    _walk(node, (), lines, str(path), errors)
    if errors:
        raise ConfigError(errors)
    loader = _Loader("")
    try:
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([f"{where}: {exc.problem}"]) from None
    finally:
        loader.dispose()
    return data, lines


def _describe(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    # pydantic echoes the offending input in some messages; inputs may be secrets, so never
    # append it. Messages themselves do not contain the input.
    return msg


def validate(model: type[M], data: Any, lines: LineMap, path: Path, context: Any = None) -> M:
    """Validate plain data into `model`; ConfigError listing every problem with file:line."""
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as exc:
        messages = []
        for err in exc.errors(include_url=False, include_input=False):
            loc: Loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
            messages.append(f"{path}:{lines.line(loc)}: {format_loc(loc)}: {_describe(err)}")
        raise ConfigError(messages) from None


def _is_union_tag(part: str | int) -> bool:
    # pydantic inserts validator names such as "function-after[...]" into loc; not a key.
    return isinstance(part, str) and part.startswith("function-")


def read_secret(*, file: Path | None, env: str | None, what: str) -> Secret | None:
    """Read a secret from a file (which must not be readable by others) or an env variable.

    Errors name the file or variable, never the secret. Both at once is a mistake (which one
    would win is not obvious to whoever edits the config next), refused here for every secret.
    """
    if file is not None and env is not None:
        raise ValueError(f"{what}: give a file or an environment variable, not both")
    if file is not None:
        try:
            st = file.stat()
        except OSError as exc:
            raise ValueError(f"{what}: cannot read secret file {file}: {exc.strerror}") from None
        if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
            raise ValueError(
                f"{what}: secret file {file} is readable by others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {file}"
            )
        try:
            value = file.read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ValueError(f"{what}: cannot read secret file {file}: {exc.strerror}") from None
        if not value:
            raise ValueError(f"{what}: secret file {file} is empty")
        return Secret(value)
    if env is not None:
        from_env = os.environ.get(env)
        if not from_env:
            raise ValueError(f"{what}: environment variable {env} is not set or empty")
        return Secret(from_env)
    return None


# --- settings both services share ----------------------------------------------------------


class LogConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class TlsConfig(StrictModel):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @pydantic.model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        for label, path in (
            ("ca_file", self.ca_file),
            ("cert_file", self.cert_file),
            ("key_file", self.key_file),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{label}: no such file: {path}")
        return self


class MqttLogin(StrictModel):
    """Username and a password from a file or an environment variable (agent and collector)."""

    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None

    _password: Secret | None = pydantic.PrivateAttr(None)

    @pydantic.model_validator(mode="after")
    def _secrets(self) -> MqttLogin:
        secret = read_secret(file=self.password_file, env=self.password_env, what="password")
        if secret is not None and self.username is None:
            raise ValueError("a password needs a username")
        self._password = secret
        return self

    @property
    def password(self) -> str | None:
        return self._password.reveal() if self._password else None
