"""The lab's hand-tuned CIFAR-10 network, as its report scored it: the figures to beat.

From the lab's notebook (20 epochs, SGD lr 0.01, batch 64; see the project's design notes):
test accuracy 82.94 % and the diagonal of its normalised confusion matrix. They are facts about
CIFAR-10, so the report shows them only beside an experiment on CIFAR-10's ten classes.
"""

from __future__ import annotations

from collections.abc import Sequence

LAB_TEST_ACC = 0.8294
LAB_PER_CLASS_ACC = {
    "plane": 0.84, "car": 0.93, "bird": 0.79, "cat": 0.56, "deer": 0.81,
    "dog": 0.81, "frog": 0.89, "horse": 0.88, "ship": 0.88, "truck": 0.90,
}  # fmt: skip
# torchvision names two CIFAR-10 classes differently from the lab's report.
CLASS_ALIASES = {"airplane": "plane", "automobile": "car"}


def lab_per_class(classes: Sequence[str]) -> list[float] | None:
    """The lab's per-class test accuracy in the order of `classes`, or None unless `classes` are
    CIFAR-10's ten (under either naming)."""
    names = [CLASS_ALIASES.get(str(c).lower(), str(c).lower()) for c in classes]
    if sorted(names) != sorted(LAB_PER_CLASS_ACC):
        return None
    return [LAB_PER_CLASS_ACC[n] for n in names]
