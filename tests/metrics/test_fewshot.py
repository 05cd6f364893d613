"""Few-shot episodes: sampling invariants, determinism, NCC vs brute force, CI formula, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from transferlens.errors import InputError
from transferlens.metrics.fewshot import few_shot_eval, sample_episodes


def _clusters(k=8, n_per=25, d=6, spread=0.2, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per)
    return rng.normal(size=(k, d))[y] * 5 + spread * rng.normal(size=(y.size, d)), y


def test_episode_invariants():
    _, y = _clusters()
    for classes, sup, qry in sample_episodes(y, n_way=5, k_shot=3, n_query=4, n_episodes=20, seed=1):
        assert len(set(classes.tolist())) == 5
        assert sup.shape == (5, 3) and qry.shape == (5, 4)
        assert not set(sup.ravel()) & set(qry.ravel())
        for c, s_idx, q_idx in zip(classes, sup, qry):
            assert np.all(y[s_idx] == c) and np.all(y[q_idx] == c)


def test_deterministic_by_seed():
    x, y = _clusters(spread=3.0)
    a = few_shot_eval(x, y, n_episodes=40, seed=7)
    b = few_shot_eval(x, y, n_episodes=40, seed=7)
    c = few_shot_eval(x, y, n_episodes=40, seed=8)
    np.testing.assert_array_equal(a.accuracies, b.accuracies)
    assert not np.array_equal(a.accuracies, c.accuracies)


def test_ncc_matches_brute_force_and_ci_formula():
    x, y = _clusters(spread=4.0, seed=2)
    res = few_shot_eval(x, y, n_way=4, k_shot=2, n_query=5, n_episodes=30, seed=3)
    accs = []
    for _, sup, qry in sample_episodes(y, n_way=4, k_shot=2, n_query=5, n_episodes=30, seed=3):
        protos = [x[s].mean(axis=0) for s in sup]
        correct = 0
        for true_c, q_idx in enumerate(qry):
            for i in q_idx:
                dists = [np.linalg.norm(x[i] - p) for p in protos]
                correct += int(np.argmin(dists) == true_c)
        accs.append(correct / qry.size)
    np.testing.assert_allclose(res.accuracies, accs)
    assert res.mean == pytest.approx(np.mean(accs))
    assert res.ci95 == pytest.approx(1.96 * np.std(accs, ddof=1) / np.sqrt(30))
    assert 0.3 < res.mean < 1.0  # non-trivial regime


@pytest.mark.parametrize("classifier", ["ncc", "linear"])
def test_separated_clusters_are_solved_and_noise_is_chance(classifier):
    x, y = _clusters(spread=0.05)
    sep = few_shot_eval(x, y, n_episodes=20, k_shot=2, n_query=5, classifier=classifier)
    assert sep.mean == 1.0 and sep.ci95 == 0.0
    noise = np.random.default_rng(1).normal(size=x.shape)
    n_ep = 300 if classifier == "ncc" else 60  # the sklearn probe is ~50 ms per episode
    ch = few_shot_eval(noise, y, n_episodes=n_ep, k_shot=2, n_query=5, classifier=classifier, seed=2)
    assert abs(ch.mean - 0.2) < 0.05  # per-episode sd ≈ 0.08: > 5 standard errors


def test_more_shots_help_on_noisy_clusters():
    x, y = _clusters(spread=4.0, n_per=40, seed=4)
    one = few_shot_eval(x, y, k_shot=1, n_episodes=300, seed=0).mean
    five = few_shot_eval(x, y, k_shot=5, n_episodes=300, seed=0).mean
    assert five > one + 0.03


def test_l2_normalisation_option():
    x, y = _clusters(spread=0.05)
    r = few_shot_eval(x * np.arange(1, x.shape[0] + 1)[:, None], y, normalize="l2", n_episodes=10, k_shot=2, n_query=3)
    assert r.mean == 1.0 and r.as_dict()["n_way"] == 5 and "accuracies" not in r.as_dict()


def test_bad_inputs():
    x, y = _clusters(k=4, n_per=10)
    with pytest.raises(InputError, match="n_way"):
        few_shot_eval(x, y, n_way=5, k_shot=2, n_query=3)
    with pytest.raises(InputError, match="k_shot"):
        few_shot_eval(x, y, n_way=3, k_shot=0)
    with pytest.raises(InputError, match="classifier"):
        few_shot_eval(x, y, n_way=3, k_shot=2, n_query=3, classifier="knn")
    with pytest.raises(InputError, match="normalize"):
        few_shot_eval(x, y, n_way=3, k_shot=2, n_query=3, normalize="zca")
    with pytest.raises(InputError, match="same samples"):
        few_shot_eval(x, y[:-1], n_way=3)
    y2 = y.copy()
    y2[10:18] = 0  # class 0 gets 18 samples, class 1 keeps 2
    with pytest.warns(UserWarning, match="left out"):
        few_shot_eval(x, y2, n_way=3, k_shot=2, n_query=3, n_episodes=5)
