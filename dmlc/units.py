"""Unit numbers (shared by every stage): parse `10s 30m 1h 7d`, `500m 2`, `2Gi 512Mi` and format back.

The field's type decides what a unit means (`30m` is 30 minutes as a duration, 30 millicores as cpu),
so there is one parser per quantity kind. Parsers raise `UnitError` with a hint; callers turn it
into a DML021 diagnostic. Values are kept as plain numbers: seconds, millicores, bytes.
"""

from __future__ import annotations

import math
import re

_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")

DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MEMORY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
CPU_UNITS = {"": 1000, "m": 1}


class UnitError(ValueError):
    """A number whose unit does not fit the field; `hint` names the units that do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def _split(text: str, what: str, units: dict[str, float]) -> tuple[float, str]:
    match = _NUMBER.match(text)
    allowed = ", ".join(u or "(none)" for u in units)
    if not match:
        raise UnitError(f"`{text}` is not a {what}", f"write a number with one of the units {allowed}")
    number, unit = match.groups()
    if unit not in units:
        hint = f"use one of: {allowed}"
        if unit.endswith(("B", "b")) and unit[:-1].upper().replace("K", "k") in units:
            base = unit[:-1].upper().replace("K", "k")
            hint = f"write `{number}{base.replace('k', 'K')}i` (binary, as Kubernetes) or `{number}{base}` (decimal)"
        raise UnitError(f"unknown {what} unit `{unit}` in `{text}`", hint)
    if not math.isfinite(float(number)):
        raise UnitError(f"`{text[:40]}` is too large a {what}", "write a smaller number")
    return float(number), unit


def parse_duration(value: str | int | float) -> float:
    """Seconds from `10s`, `30m`, `1.5h`, `7d` or a bare number of seconds."""
    if isinstance(value, bool):
        raise UnitError(f"`{value}` is not a duration", "write e.g. 10s, 30m, 1h or 7d")
    if isinstance(value, (int, float)):
        return float(value)
    number, unit = _split(value, "duration", DURATION_UNITS | {"": 1})
    return number * (DURATION_UNITS[unit] if unit else 1)


def parse_memory(value: str | int | float) -> int:
    """Bytes from `2Gi`, `512Mi`, `1G`, or a bare number of bytes."""
    if isinstance(value, bool):
        raise UnitError(f"`{value}` is not a size", "write e.g. 512Mi or 2Gi")
    if isinstance(value, (int, float)):
        return int(value)
    number, unit = _split(value, "size", MEMORY_UNITS)
    return int(number * MEMORY_UNITS[unit])


def parse_cpu(value: str | int | float) -> int:
    """Millicores from `500m`, `2`, `1.5`."""
    if isinstance(value, bool):
        raise UnitError(f"`{value}` is not a cpu amount", "write e.g. 500m or 2")
    if isinstance(value, (int, float)):
        return int(round(value * 1000))
    number, unit = _split(value, "cpu", CPU_UNITS)
    return int(round(number * CPU_UNITS[unit]))


def format_duration(seconds: float) -> str:
    """The largest unit that expresses `seconds` exactly: 1800 -> `30m`."""
    for unit in ("d", "h", "m", "s"):
        size = DURATION_UNITS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds // size)}{unit}"
    if seconds == 0:
        return "0s"
    return f"{int(round(seconds * 1000))}ms"


def format_memory(size: int) -> str:
    """Kubernetes quantity: binary units when exact (`2Gi`), then decimal, then bytes."""
    for unit in ("Ti", "Gi", "Mi", "Ki", "T", "G", "M", "k"):
        if size and size % MEMORY_UNITS[unit] == 0:
            return f"{size // MEMORY_UNITS[unit]}{unit}"
    return str(size)


def format_cpu(millicores: int) -> str:
    """Kubernetes quantity: `2` for whole cores, `500m` otherwise."""
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"
