"""The decoded-arrays cache: `<cache_root>/<key>/{train_x,train_y,test_x,test_y}.npy` +
meta.json, written atomically, keyed by a fingerprint of the source files, so that every later
search and every Ray worker starts from a fast `np.load` (about 0.1 s for CIFAR-10's 50,000
images against about 6 s to decode its JPEGs on 2 cores)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tuner.data.splits import CacheRef, Progress, Split, _Decoded, _root_hash
from tuner.errors import DataError

CACHE_DIRNAME = "tuner-cache"
# Bump when the cached arrays' meaning changes (scaling, split rule) so old caches are rebuilt.
CACHE_FORMAT_VERSION = 1
CACHE_FILES = ("train_x.npy", "train_y.npy", "test_x.npy", "test_y.npy", "meta.json")


def default_data_dir() -> Path:
    """$TUNER_DATA_DIR, else ~/.cache/cnn-tuner."""
    env = os.environ.get("TUNER_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cnn-tuner"


def _read_cache(cache_dir: Path, fingerprint: Any, *, mmap: bool = False) -> _Decoded | None:
    """The cached arrays if they exist and match `fingerprint`, else None (a miss, never raises).

    mmap: map the files copy-on-write instead of reading them, so trials on one node share the
    page cache's single copy until they move the arrays to their device.
    """
    try:
        meta = json.loads((cache_dir / "meta.json").read_text())
        if meta.get("format_version") != CACHE_FORMAT_VERSION or meta.get("fingerprint") != (
            json.loads(json.dumps(fingerprint))  # compare in JSON form: tuples come back as lists
        ):
            return None
        arrays = {
            stem: np.load(
                cache_dir / f"{stem}.npy", allow_pickle=False, mmap_mode="c" if mmap else None
            )
            for stem in ("train_x", "train_y", "test_x", "test_y")
        }
        return _Decoded(
            trainval=Split(arrays["train_x"], arrays["train_y"]),
            test=Split(arrays["test_x"], arrays["test_y"]),
            classes=tuple(meta["classes"]),
            source=str(meta["source"]),
            cache_dir=cache_dir,
            fingerprint=fingerprint,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        # Missing, truncated or foreign files are a cache miss: decode again and overwrite.
        return None


def _write_cache(cache_dir: Path, decoded: _Decoded, fingerprint: Any) -> None:
    """Write into a temp dir next to `cache_dir`, then rename it into place.

    A crash or Ctrl-C mid-write leaves at most a hidden temp dir that is removed on the way out,
    never a half-written cache that a later run would trust.
    """
    from tuner.io import dir_mode

    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.tmp-", dir=cache_dir.parent))
    try:
        tmp.chmod(dir_mode())  # mkdtemp makes it private: give it what mkdir would have
        np.save(tmp / "train_x.npy", decoded.trainval.x, allow_pickle=False)
        np.save(tmp / "train_y.npy", decoded.trainval.y, allow_pickle=False)
        np.save(tmp / "test_x.npy", decoded.test.x, allow_pickle=False)
        np.save(tmp / "test_y.npy", decoded.test.y, allow_pickle=False)
        meta = {
            "format_version": CACHE_FORMAT_VERSION,
            "classes": list(decoded.classes),
            "source": decoded.source,
            "fingerprint": fingerprint,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if cache_dir.exists():
            # rename() cannot replace a non-empty directory: move the stale one aside first.
            stale = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.old-", dir=cache_dir.parent))
            os.replace(cache_dir, stale / "cache")
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, cache_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cache_roots(preferred: Path) -> list[Path]:
    """Where to look for / put a cache: next to the data, else the user's default data dir."""
    roots = [preferred / CACHE_DIRNAME]
    fallback = default_data_dir() / CACHE_DIRNAME
    if fallback.resolve() != roots[0].resolve():
        roots.append(fallback)
    return roots


def _from_cache(
    key: str, fingerprint: Any, cache_roots: list[Path], progress: Progress | None, label: str
) -> _Decoded | None:
    """The first cache root holding `key` with this fingerprint, or None."""
    for root in cache_roots:
        hit = _read_cache(root / key, fingerprint)
        if hit is not None:
            if progress:
                progress(f"loaded {label} from cache {root / key}")
            return hit
    return None


def _cached(
    key: str,
    fingerprint: Any,
    cache_roots: list[Path],
    decode: Callable[[], _Decoded],
    progress: Progress | None,
) -> _Decoded:
    hit = _from_cache(key, fingerprint, cache_roots, progress, key)
    if hit is not None:
        return hit
    decoded = decode()
    for root in cache_roots:
        try:
            _write_cache(root / key, decoded, fingerprint)
        except OSError:
            continue  # read-only or full: try the next place, and run uncached if none works
        if progress:
            progress(f"cached {key} in {root / key}")
        return dataclasses.replace(decoded, cache_dir=root / key, fingerprint=fingerprint)
    return decoded


def _cached_download(
    name: str,
    root: Path,
    fingerprint: Callable[[], Any],
    decode: Callable[[], _Decoded],
    progress: Progress | None,
) -> _Decoded:
    """A dataset torchvision reads from files under `root` (downloading them if need be): from
    the cache while `fingerprint()` (the files' sizes and mtimes, None while any is missing)
    matches, else decoded and cached."""
    key = f"{name}-{_root_hash(root)}"
    roots = _cache_roots(root)
    before = fingerprint()
    hit = _from_cache(key, before, roots, progress, name) if before is not None else None
    if hit is not None:
        return hit
    decoded = decode()
    # A download has just created the files: fingerprint them now so the next run hits the cache.
    after = fingerprint()
    if after is None:
        return decoded
    return _cached(key, after, roots, lambda: decoded, progress)


def open_cached(ref: CacheRef) -> tuple[Split, Split]:
    """(train, val) of a dataset another process cached, memory-mapped; never decodes.

    This is how a trial on a cluster node gets its data: the cache must be on storage that every
    node mounts at the same path (docker-compose.yml mounts /shared and sets TUNER_DATA_DIR).
    """
    cache_dir = Path(ref.cache_dir)
    decoded = _read_cache(cache_dir, ref.fingerprint, mmap=True)
    if decoded is None:
        raise DataError(
            f"dataset cache {cache_dir} is missing or differs on node {socket.gethostname()}; "
            "with --address, --data-dir (or $TUNER_DATA_DIR) must be on storage that every "
            "node mounts at the same path"
        )
    n_train = len(decoded.trainval.y) - ref.val_count
    x, y = decoded.trainval.x, decoded.trainval.y
    return Split(x[:n_train], y[:n_train]), Split(x[n_train:], y[n_train:])
