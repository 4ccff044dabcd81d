"""Decoding an image folder with 1 process against N, side by side: images/s.

The first search on an image folder decodes every file once (PIL) into the uint8 cache; with
`--decode-workers` (default: every core) the files are decoded in that many processes. Each
round decodes the same files with 1 worker and then with N, uncached (tuner.data.imagefolder's own
_decode_images), and the ratio is taken round by round.

    python bench/decode.py /tmp/cifar-jpg/train --images 50000 --workers 2 --rounds 5

Target (issue 15): >= 1.8x with 2 workers on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tuner.data import imagefolder as data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a class-per-folder tree of images")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    _, samples = data._list_folder(args.folder, None)
    step = max(1, len(samples) // args.images)  # every class, not the first few
    samples = samples[::step][: args.images]
    # A first pass, not counted: it reads the files into the page cache, which would otherwise
    # favour whichever side runs second (a cold first round measured 35x).
    data._decode_images(samples, None, None, 0, len(samples), workers=args.workers)
    rounds = []
    for _ in range(args.rounds):
        rates = {}
        for workers in (1, args.workers):
            start = time.perf_counter()
            split, _ = data._decode_images(samples, None, None, 0, len(samples), workers=workers)
            seconds = time.perf_counter() - start
            assert len(split.y) == len(samples)
            rates[workers] = len(samples) / seconds
        rounds.append({"one": round(rates[1]), "many": round(rates[args.workers]),
                       "ratio": round(rates[args.workers] / rates[1], 3)})  # fmt: skip
        print(rounds[-1], flush=True)
    summary = {
        "images": len(samples), "workers": args.workers,
        "median_ratio": statistics.median(r["ratio"] for r in rounds), "rounds": rounds,
    }  # fmt: skip
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
