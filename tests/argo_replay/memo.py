"""The memoization cache: a ConfigMap per `memoize.cache.configMap.name`, one data entry per key.

argo-workflows v4.1.2 `workflow/controller/cache/configmap_cache.go` and `cache.go`: a key must match
`^[a-zA-Z0-9][-a-zA-Z0-9]*$` ("invalid cache key: ..."); an entry is the JSON of
`{nodeID, outputs, creationTimestamp, lastHitTimestamp}`; a hit is an entry with a node ID, fresh when
`time.Since(creationTimestamp) <= maxAge` (`GetOutputsWithMaxAge`); loading stamps lastHitTimestamp;
a node saves its outputs when it succeeds. Timestamps are RFC3339 seconds, as the API server stores
them. With a `path` the ConfigMaps live in one JSON file, so two replays share them.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KEY = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class MemoCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.maps: dict[str, dict[str, str]] = {}

    def _read(self) -> dict[str, dict[str, str]]:
        if self.path is not None and self.path.exists():
            return json.loads(self.path.read_text() or "{}")
        return self.maps

    def _write(self, maps: dict[str, dict[str, str]]) -> None:
        self.maps = maps
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(maps, indent=1, sort_keys=True))
            tmp.replace(self.path)

    def load(self, config_map: str, key: str) -> dict[str, Any] | None:
        if not KEY.match(key):
            raise ValueError(f"invalid cache key: {key}")
        maps = self._read()
        raw = maps.get(config_map, {}).get(key)
        if not raw:
            return None
        entry = json.loads(raw)
        entry["lastHitTimestamp"] = _stamp(time.time())
        maps[config_map][key] = json.dumps(entry, separators=(",", ":"))
        self._write(maps)
        return entry

    def save(self, config_map: str, key: str, node_id: str, outputs: dict[str, Any] | None) -> None:
        if not KEY.match(key):
            raise ValueError(f"invalid cache key: {key}")
        maps = self._read()
        now = _stamp(time.time())
        entry = {"nodeID": node_id, "outputs": outputs, "creationTimestamp": now, "lastHitTimestamp": now}
        maps.setdefault(config_map, {})[key] = json.dumps(entry, separators=(",", ":"))
        self._write(maps)

    @staticmethod
    def age(entry: dict[str, Any]) -> float:
        return time.time() - _parse(entry["creationTimestamp"])
