"""Looking up a run or an artifact by a prefix (issue 12): `dmlc runs show %` and `--resume %` matched like
SQL `LIKE` (`%` any text, `_` any character, case ignored), so a typo could resume another run. A run id
matches exactly or as a literal, case-sensitive, unique prefix; an artifact digest the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from dmlc_targets.local.store import Store

RUN = "train-20260101-120000-ab12"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "metadata.db")
    store.start_run(RUN, "train", "p.dml", {}, str(tmp_path))
    digest = "sha256:" + "ab" * 32
    store.put_outputs(RUN, "s", "", [{"digest": digest, "path": "/x/model", "name": "model", "kind": "artifact"}])
    return store


@pytest.mark.parametrize("given", ["%", "", "_", "train%", "train_20260101", "TRAIN-2026", "%ab12", "train-2026%"])
def test_wildcards_and_case_do_not_match_a_run(store: Store, given: str) -> None:
    assert store.run(given) is None


@pytest.mark.parametrize("given", [RUN, "train-2026", "t"])
def test_an_exact_id_or_a_literal_prefix_matches(store: Store, given: str) -> None:
    found = store.run(given)
    assert found is not None and found["id"] == RUN


def test_an_ambiguous_prefix_matches_nothing(store: Store, tmp_path: Path) -> None:
    store.start_run(RUN[:-1] + "3", "train", "p.dml", {}, str(tmp_path))
    assert store.run("train-2026") is None and store.run(RUN) is not None


@pytest.mark.parametrize(
    ("given", "found"), [("%", 0), ("_b", 0), ("sha256:%", 0), ("AB", 0), ("abab", 1), ("/x/model", 1)]
)
def test_artifact_digests_match_as_literal_prefixes(store: Store, given: str, found: int) -> None:
    assert len(store.artifacts_like(given)) == found
