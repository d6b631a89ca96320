import pytest
import numpy as np

from embeddings import ClusterParams, cluster_misconceptions
from factory import SynthConfig, plan, prepare


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_noise_joins_a_close_cluster_or_becomes_a_singleton():
    rng = np.random.default_rng(0)
    a = _unit(np.array([1, 0, 0, 0]) + 0.01 * rng.standard_normal((20, 4)))
    b = _unit(np.array([0, 1, 0, 0]) + 0.01 * rng.standard_normal((20, 4)))
    near_a = _unit([[0.75, 0.0, 0.66, 0.0]])  # cosine ~0.75 to a, 0 to b: noise that joins a
    alone = _unit([[0.0, 0.0, 0.0, 1.0]])  # orthogonal to both: a singleton
    vectors = np.concatenate([a, b, near_a, alone])
    ids = list(range(100, 100 + len(vectors)))
    near_id, alone_id = ids[-2], ids[-1]
    c = cluster_misconceptions(ids, vectors, ClusterParams(min_cluster_size=3, attach_threshold=0.6))
    assert set(c.cluster_of) == set(ids)  # nobody dropped
    assert c.hdbscan_clusters >= 2 and c.noise >= 2
    joined = c.members[c.cluster_of[near_id]]
    assert len(joined) > 1 and all(m in ids[:20] or m == near_id for m in joined)  # near_a joined an a-cluster
    assert c.members[c.cluster_of[alone_id]] == (alone_id,)  # alone is a singleton
    assert c.noise_attached >= 1 and c.stats()["singletons"] >= 1
    assert [m[0] for m in c.members.values()] == sorted(m[0] for m in c.members.values())


@pytest.mark.slow
def test_real_clustering_is_complete_and_deterministic(data_dir):
    config = SynthConfig(data_dir=data_dir)
    first = prepare(config)
    second = prepare(config)
    assert first.clustering.cluster_of == second.clustering.cluster_of
    assert np.array_equal(first.vectors, second.vectors)  # second came from the cache
    assert len(first.clustering.cluster_of) == 2587
    stats = first.clustering.stats()
    assert stats["noise"] > 0.2 * 2587  # HDBSCAN leaves many points as noise...
    assert sum(len(m) for m in first.clustering.members.values()) == 2587  # ...and none is dropped


@pytest.mark.slow
def test_plan_targets_only_unseen_misconceptions_in_cluster_order(data_dir):
    config = SynthConfig(data_dir=data_dir, per_misconception=2, shots=4, mode="question")
    world = prepare(config)
    targets = plan(world, config, world.targets(1))
    unseen = world.targets(1)
    assert {t.misconception_id for t in targets} == unseen
    assert len(targets) == 2 * len(unseen)
    assert [t.cluster_id for t in targets] == sorted(t.cluster_id for t in targets)
    by_cluster = {}
    for t in targets:
        assert len(t.shots) == 4
        by_cluster.setdefault(t.cluster_id, t.shots)
        assert t.shots == by_cluster[t.cluster_id]  # one shared prefix per cluster
    real_keys = {p.key for p in world.data.train_pairs}
    assert all(s.key in real_keys for t in targets for s in t.shots)
    assert len(plan(world, config, world.targets(3))) > len(targets)
