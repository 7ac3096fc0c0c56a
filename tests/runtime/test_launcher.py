"""The local launcher's pure parts: cluster layout, ports and the elastic worker count."""

from __future__ import annotations

from dmlc.ir.model import Train
from dmlc.runtime.local_cluster import cluster_spec, free_ports, initial_workers, next_workers


def test_cluster_layouts() -> None:
    allreduce = cluster_spec("allreduce", 2, 0)
    assert list(allreduce) == ["worker"] and len(allreduce["worker"]) == 2
    ps = cluster_spec("parameter_server", 2, 1)
    assert {k: len(v) for k, v in ps.items()} == {"chief": 1, "worker": 2, "ps": 1}
    addresses = [a for group in ps.values() for a in group]
    assert len(set(addresses)) == len(addresses) and all(a.startswith("127.0.0.1:") for a in addresses)


def test_free_ports_differ() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5


def _train(**attrs: object) -> Train:
    return Train.model_validate({"kind": "train", "data": "/d", "strategy": "allreduce", **attrs})


def test_elastic_worker_counts() -> None:
    assert initial_workers(_train(workers=2)) == (2, None)
    assert initial_workers(_train(workers=5, elastic={"min_workers": 1, "max_workers": 3})) == (3, (1, 3))
    assert initial_workers(_train(workers=1, elastic={"min_workers": 2, "max_workers": 3})) == (2, (2, 3))
    assert next_workers(2, 1, None) == 2  # not elastic: same size again
    assert next_workers(3, 1, (1, 3)) == 2  # survivors
    assert next_workers(2, 2, (1, 3)) == 1  # never below min_workers
