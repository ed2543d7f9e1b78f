"""Variables in a dotenv file (`KEY=VALUE` lines): written whole at once, read back by the commands."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ocr_poller_tools.errors import ToolError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN = re.compile(r"[A-Za-z0-9_./:@%+=,-]*")  # what a shell reads unquoted


def write_env_file(path: Path, variables: Mapping[str, str]) -> None:
    """Replace `path` atomically: a reader sees either no file, the old one, or all of the new one.

    The file holds credentials, so only its owner may read it. Values are single-quoted when a shell
    would need it, so `set -a; . PATH; set +a` works too.
    """
    check_env_file_target(path)
    lines = []
    for name, value in variables.items():
        if not _NAME.fullmatch(name) or "\n" in value or "'" in value:
            raise ToolError(f"cannot write {name}={value!r} to an env file")
        lines.append(f"{name}={value}" if _PLAIN.fullmatch(value) else f"{name}='{value}'")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check_env_file_target(path: Path) -> None:
    """Refuse a path the env file could not be written to, before anything is started for it."""
    if path.is_dir():
        raise ToolError(f"{path} is a folder; --env-file wants a file")
    if not path.parent.is_dir():
        raise ToolError(f"{path.parent}: no such folder for the env file")


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a dotenv file: `KEY=VALUE`, optional `export `, quotes, `#` comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ToolError(f"{path}: no such env file") from None
    except IsADirectoryError:
        raise ToolError(f"{path} is a folder, not an env file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolError(f"{path}: cannot read the env file: {exc}") from exc
    variables: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not _NAME.fullmatch(name):
            raise ToolError(f"{path}:{number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[name] = value
    return variables
