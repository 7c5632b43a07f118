"""The tested versions (pins.toml), for the scripts and workflows that install torch.

    python katas/_harness/pins.py pinned.torch      -> 2.13.0
    python katas/_harness/pins.py --github-output   -> key=value lines for $GITHUB_OUTPUT

Runs as a plain script (no torch, no harness import) so a workflow can read a pin before
anything is installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli is a dependency there
    import tomli as tomllib

PINS = Path(__file__).with_name("pins.toml")


def load() -> dict:
    return tomllib.loads(PINS.read_text(encoding="utf-8"))


def get(key: str) -> str:
    """A dotted key of pins.toml, e.g. "pinned.torch"."""
    value: object = load()
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"{PINS.name} has no {key!r}")
        value = value[part]
    return value if isinstance(value, str) else json.dumps(value)


def matrix() -> dict:
    """ci.yml's test matrix: the pinned pair, the floor pair, the newest torch on each newest Python."""
    pins = load()
    legs = [
        {"name": "pinned", "python": pins["pinned"]["python"], "torch": pins["pinned"]["torch"], "numpy": ""},
        {
            "name": "floor",
            "python": pins["floor"]["python"],
            "torch": pins["floor"]["torch"],
            "numpy": pins["floor"]["numpy"],
        },
    ]
    legs += [{"name": "newest", "python": p, "torch": "", "numpy": ""} for p in pins["newest"]["pythons"]]
    return {"include": legs}


def github_output() -> str:
    pins = load()
    lines = [
        f"torch={pins['pinned']['torch']}",
        f"python={pins['pinned']['python']}",
        f"matrix={json.dumps(matrix(), separators=(',', ':'))}",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv == ["--github-output"]:
        print(github_output())
        return 0
    if len(argv) == 1 and not argv[0].startswith("-"):
        try:
            print(get(argv[0]))
        except KeyError as err:
            print(err.args[0], file=sys.stderr)
            return 2
        return 0
    print("usage: pins.py KEY (e.g. pinned.torch) | --github-output", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
