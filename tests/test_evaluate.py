import numpy as np

from igcore.evaluate import group_metrics


def test_group_metrics_known_values():
    names = ["husky/snow", "husky/grass", "wolf/snow", "wolf/grass"]
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    pred = np.array([0, 0, 0, 1, 1, 1, 0, 0])  # wolf/grass all wrong, husky/grass half
    m = group_metrics(y, pred, groups, names, train_groups=np.array([0, 1, 1, 1, 2, 2, 2, 3]))
    assert m["avg_acc"] == 5 / 8
    assert m["group_acc"] == {"husky/snow": 1.0, "husky/grass": 0.5, "wolf/snow": 1.0, "wolf/grass": 0.0}
    assert m["worst_group_acc"] == 0.0 and m["worst_group"] == "wolf/grass"
    # training proportions 1:3:3:1
    assert np.isclose(m["train_weighted_acc"], (1 * 1.0 + 3 * 0.5 + 3 * 1.0 + 1 * 0.0) / 8)


def test_probabilities_are_argmaxed_and_absent_groups_skipped():
    names = ["a", "b", "c"]
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    m = group_metrics(np.array([0, 0]), proba, np.array([0, 2]), names)
    assert m["group_acc"] == {"a": 1.0, "c": 0.0}
    assert "b" not in m["group_n"]
