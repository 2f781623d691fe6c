"""Peer methods: GroupDRO's adversarial group weights, DFR's balanced last-layer refit, and every peer
running as a pipeline stage."""

import numpy as np
import pytest
import torch

from igcore.config import load_config
from igcore.peers import PEERS
from igcore.peers.dfr import DFR
from igcore.peers.groupdro import GroupDROClassifier
from igcore.pipeline import run_pipeline
from igcore.schema import pred_column
from igcore.store import load_run_dir


def test_groupdro_upweights_the_group_with_higher_loss():
    model = GroupDROClassifier(num_labels=2, eta=0.5).set_groups(np.array([0, 0, 1, 1]))
    logits = torch.tensor([[4.0, -4.0], [4.0, -4.0], [4.0, -4.0], [4.0, -4.0]])
    targets = torch.tensor([0, 0, 1, 1])  # group 1 is badly wrong
    model.batch_loss(logits, targets, torch.arange(4))
    assert model.q_[1] > model.q_[0]
    assert torch.isclose(model.q_.sum(), torch.tensor(1.0))


def test_dfr_uses_the_core_feature_after_balancing():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 2, n)
    spurious = np.where(rng.random(n) < 0.95, y, 1 - y)  # majority groups dominate
    groups = y * 2 + spurious
    core = y + 0.6 * rng.standard_normal(n)
    feats = np.stack([core, 3 * spurious + 0.1 * rng.standard_normal(n)], 1)
    dfr = DFR(C=1.0, n_subsets=5).fit(feats, y, groups)
    assert dfr.n_per_group_ == min(np.bincount(groups))
    proba = dfr.predict_proba(feats)
    assert np.allclose(proba.sum(1), 1.0)
    minority = spurious != y
    assert (proba.argmax(1)[minority] == y[minority]).mean() > 0.7
    assert abs(dfr.coef_[0, 0]) > abs(dfr.coef_[0, 1])  # the core feature carries the decision


def test_dfr_is_the_same_whatever_the_global_random_state():
    """Found comparing two runs of one config: liblinear drew from numpy's global generator (seeded from the OS)."""
    rng = np.random.default_rng(1)
    y, groups = rng.integers(0, 2, 400), rng.integers(0, 4, 400)
    feats = np.stack([y + rng.standard_normal(400), rng.standard_normal(400), rng.standard_normal(400)], 1)
    answers = []
    for state in (0, 1):
        np.random.seed(state)
        answers.append(DFR(C=1.0, n_subsets=3, seed=0).fit(feats, y, groups).predict_proba(feats))
    np.testing.assert_array_equal(answers[0], answers[1])


@pytest.mark.slow
def test_every_peer_runs_as_a_stage(tmp_path):
    sets = ["world.n_train=160", "world.n_val=120", "world.n_test_train=60", "world.n_test_eval=90",
            "world.n_concept_bank=60", "world.image_size=32", "baseline.epochs=1", f"peers={list(PEERS)}".replace("'", '"'),
            "run_id=peers"]
    config = load_config(None, sets)
    run = load_run_dir(run_pipeline(config, tmp_path, stages=["world", "erm", *PEERS], progress=False))
    preds = run.table("predictions")
    for name in PEERS:
        m = run.results().methods[name]
        correct = preds[pred_column(name)] == preds["label"]
        by_group = correct.groupby(preds["group"]).mean()
        assert m.avg_acc == pytest.approx(correct.mean())  # metrics agree with the stored answers
        assert m.worst_group_acc == pytest.approx(by_group.min())
        assert m.uses
        assert (run.path / "models" / name / "estimator.json").is_file() or name == "dfr"
