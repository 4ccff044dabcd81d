"""The fixed 45,000 / 5,000 split of the CIFAR-10 JPEG training set, as a train/ + test/ tree.

The GPU benchmarks all use it: `tuner search --dataset imagefolder --data-dir DST` then trains on
train/ (45,000 images, its validation split cut from them) and reports held-out accuracy on
test/ (5,000 images), and the throughput benchmarks read the same tree. The tree holds symbolic
links to the extracted JPEGs, so it costs no copy. Every 10th file of each class (in sorted
order) is held out: the same 500 per class on every machine.

    python bench/cifar_split.py /tmp/cifar-jpg/train /tmp/cifar-45k5k
    python bench/cifar_split.py /tmp/cifar-jpg/train /tmp/cifar-smoke --per-class 60   # tiny
    python bench/cifar_split.py /tmp/cifar-jpg/train /tmp/cifar-6k --per-class 600 \
        --hold-out-every 6     # 5,000 / 1,000 (bench/spaces.py)
    python bench/cifar_split.py /tmp/cifar-jpg/train /tmp/cifar-11k --per-class 1100 \
        --test-per-class 1000  # 11,000 / 10,000: the [search] issue's real-CIFAR protocol
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HOLD_OUT_EVERY = 10


def make_split(
    src: Path, dst: Path, per_class: int | None = None, every: int = HOLD_OUT_EVERY,
    test_per_class: int | None = None,
) -> tuple[int, int]:  # fmt: skip
    """Link src/<class>/*.jpg into dst/train/<class>/ and dst/test/<class>/; (train, test).
    Every `every`-th file of a class is held out; with `test_per_class`, the first `per_class`
    files of a class are the training ones and the next `test_per_class` are held out."""
    classes = sorted(p for p in src.iterdir() if p.is_dir())
    if not classes:
        raise SystemExit(f"{src} holds no class folders (expected <class>/*.jpg)")
    counts = [0, 0]
    for cls in classes:
        every_file = sorted(cls.glob("*.jpg"))
        files = every_file[:per_class]
        if test_per_class is not None:
            files = every_file[: (per_class or 0) + test_per_class]
        for split in ("train", "test"):
            (dst / split / cls.name).mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(files):
            if test_per_class is not None:
                held_out = i >= (per_class or 0)
            else:
                held_out = i % every == every - 1
            link = dst / ("test" if held_out else "train") / cls.name / f.name
            if not link.is_symlink():
                os.symlink(f.resolve(), link)
            counts[held_out] += 1
    return counts[0], counts[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="the extracted JPEGs' train/ folder")
    parser.add_argument("dst", type=Path, help="where to make the train/ + test/ tree")
    parser.add_argument("--per-class", type=int, default=None, help="use only N files per class")
    parser.add_argument("--hold-out-every", type=int, default=HOLD_OUT_EVERY,
                        help="hold out every Nth file of a class; default %(default)s")  # fmt: skip
    parser.add_argument("--test-per-class", type=int, default=None,
                        help="hold out the N files after the --per-class training ones "
                        "instead of every Nth")  # fmt: skip
    args = parser.parse_args()
    if args.test_per_class is not None and args.per_class is None:
        parser.error("--test-per-class needs --per-class (the training files of a class)")
    train, test = make_split(args.src, args.dst, args.per_class, args.hold_out_every,
                             args.test_per_class)  # fmt: skip
    print(f"{args.dst}: {train:,} train / {test:,} held-out images")


if __name__ == "__main__":
    main()
