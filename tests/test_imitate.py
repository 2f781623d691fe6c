"""The IG student's training set and epoch rule (igcore/imitate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from igcore.baseline import ImageClassifier
from igcore.imitate import imitate


class RecordingStudent:
    """Stands in for ImageClassifier: records what ``fit`` is given."""

    num_labels = 2

    def fit(self, x: np.ndarray, y: np.ndarray, val: tuple[np.ndarray, np.ndarray] | None = None) -> RecordingStudent:
        self.x, self.y, self.val = x, y, val
        return self


def test_the_student_trains_on_all_of_d_prime_with_no_labelled_split_choosing_its_epoch() -> None:
    inputs = np.arange(10, dtype=np.float32)[:, None]
    soft = np.tile(np.float32([0.3, 0.7]), (10, 1))
    student = imitate(RecordingStudent(), inputs, soft)  # type: ignore[arg-type]
    assert student.val is None
    np.testing.assert_array_equal(student.x, inputs)
    np.testing.assert_array_equal(student.y, soft)


def test_without_val_a_classifier_keeps_its_last_epoch() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (24, 16, 16, 3), dtype=np.uint8)
    soft = rng.dirichlet([1, 1], 24).astype(np.float32)
    model = imitate(ImageClassifier(num_labels=2, image_size=16, epochs=3, batch_size=8, progress=False, device="cpu"), images, soft)
    assert model.best_epoch_ == 3 and [r["epoch"] for r in model.history_] == [1, 2, 3]
    assert all("val_score" not in r for r in model.history_)


def test_soft_labels_must_match_the_inputs() -> None:
    with pytest.raises(ValueError, match="do not match"):
        imitate(RecordingStudent(), np.zeros((4, 1), np.float32), np.zeros((3, 2), np.float32))  # type: ignore[arg-type]
