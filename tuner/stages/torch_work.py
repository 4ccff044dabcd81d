"""The driver's torch work, run in a helper process: the driver itself never imports torch.

What the driver does with networks (the space's dry run, pricing configurations against a size
budget, scoring the winner on the test split, writing model.pt, the GPUs for provenance.json)
runs in one child process that `TorchHelper` starts at its first call and ends with `close()`.
Why: `import torch` alone is 506 MB of resident memory on this machine's CUDA build, half of the
driver's peak at 1,000 trials (BENCHMARKS.md, the [scale] rows); and on a GPU workstation the
test scoring used to open a CUDA context in the driver, which then held its GPU memory beside
the trials for the rest of the search.

The child is `python -m tuner.stages.torch_work`, spoken to over its stdin and stdout with
pickles, not `multiprocessing`: a spawned multiprocessing child runs the parent's `__main__`
again, and a user's script that calls `tuner.search` without an `if __name__ == "__main__"`
guard would start its search a second time.

`TorchWork` runs the same calls in this process: for tests, and for `tuner train`, which trains
here anyway. Every function handed to `run` is a module-level function of a torch-free module
(below), so that naming it in the driver imports nothing heavy; the child imports torch when
the function runs.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from search_spaces import SearchSpace
    from search_spaces.check import CheckReport
    from tuner.data import DatasetBundle
    from tuner.experiment.records import TestScore
    from tuner.train.budget import Budget, Cost
    from tuner.train.trial_data import TrialData

T = TypeVar("T")


class NotInHelper(RuntimeError):
    """A call the helper cannot make: its function or arguments do not travel to another
    process (a space defined inside a function or a notebook cell, which pickle cannot name).
    The caller may make it in this process instead."""


class HelperLost(RuntimeError):
    """The helper process died during a call (killed for memory, most often); one line."""


_HEADER = struct.Struct("!Q")  # each message: its length, then a pickle


class TorchWork:
    """The driver's torch work in this process (tests; `tuner train`)."""

    def __init__(self) -> None:
        self._data: tuple[DatasetBundle, TrialData] | None = None

    def install(self, bundle: DatasetBundle, trial_data: TrialData) -> None:
        """The dataset that `run_on_data` hands its function (sent to a helper once)."""
        self._data = (bundle, trial_data)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(*args, **kwargs)

    def run_or_here(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(*args, **kwargs)

    def run_on_data(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(bundle, trial_data, *args, **kwargs) with the installed dataset."""
        if self._data is None:
            raise RuntimeError("no dataset installed: call install(bundle, trial_data) first")
        return fn(*self._data, *args, **kwargs)

    def prewarm(self) -> None:
        pass

    def close(self) -> None:
        pass


class TorchHelper(TorchWork):
    """The same calls in one child process, started at the first call and ended by close()
    (or when this process exits: the child reads end-of-file and leaves).

    An exception raised in the child is raised here again (a ConfigError stays one). One call
    at a time: the lock orders the searcher's pricing (Tune's thread) and the stages after it.
    """

    def __init__(self, here_if_loaded: bool = True) -> None:
        """here_if_loaded: run the work in this process while it has torch already and no
        child has started (False: always in the child)."""
        super().__init__()
        self._here_if_loaded = here_if_loaded
        self._child: subprocess.Popen[bytes] | None = None
        self._sent_data = False
        self._pending = False  # a prewarm() sent, its reply not read yet
        self._lock = threading.Lock()

    def prewarm(self) -> None:
        """Start the child and its import of torch now, without waiting for them: the next
        call waits only for what is left (the driver calls this before Ray's shutdown, ~1.3 s,
        which then hides most of the ~1.5 s import before the test scoring)."""
        if self._torch_here():
            return
        with self._lock:
            if self._pending or (self._child is not None and self._child.poll() is None):
                return
            self._child = _start_child()
            self._sent_data = False
            assert self._child.stdin is not None
            _send(self._child.stdin, pickle.dumps(("run", import_torch, (), {})))
            self._pending = True

    def install(self, bundle: DatasetBundle, trial_data: TrialData) -> None:
        super().install(bundle, trial_data)
        self._sent_data = False

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._torch_here():
            return fn(*args, **kwargs)
        return self._call(("run", fn, args, kwargs))

    def _torch_here(self) -> bool:
        """Whether this process has torch already (a notebook that imported it, a test
        process) and no child yet: the helper would save no memory and cost a second import
        of torch (~3 s of a core), so the work runs here."""
        return self._here_if_loaded and self._child is None and "torch" in sys.modules

    def run_or_here(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """run(), or in this process when its arguments cannot reach the helper (NotInHelper):
        for a user's space, which a test or a notebook may have defined anywhere."""
        try:
            return self.run(fn, *args, **kwargs)
        except NotInHelper:
            return fn(*args, **kwargs)

    def run_on_data(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._data is None:
            raise RuntimeError("no dataset installed: call install(bundle, trial_data) first")
        if self._torch_here():
            return fn(*self._data, *args, **kwargs)
        with self._lock:
            if not self._sent_data:
                # Once per child: CIFAR-10's arrays are ~180 MB through the pipe (~0.3 s).
                self._call_locked(("install", self._data))
                self._sent_data = True
            return self._call_locked(("data", fn, args, kwargs))

    def _call(self, message: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._call_locked(message)

    def _call_locked(self, message: tuple[Any, ...]) -> Any:
        child = self._child
        if child is None or child.poll() is not None:
            child = self._child = _start_child()
            self._sent_data = message[0] == "install"
            self._pending = False
        assert child.stdin is not None and child.stdout is not None
        if self._pending:  # prewarm()'s reply first
            self._pending = False
            try:
                pickle.loads(_receive(child.stdout))
            except EOFError:
                pass  # the child died: the call below says so
        try:
            payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise NotInHelper(f"{_what(message)} cannot be sent to the helper: {e}") from e
        try:
            _send(child.stdin, payload)
            ok, value = pickle.loads(_receive(child.stdout))
        except (BrokenPipeError, EOFError) as e:
            code = child.wait()
            self._child = None
            how = (
                f"was killed by signal {-code}" + (" (most often for memory)" if code == -9 else "")
                if code < 0
                else f"ended (exit {code}; its error is above)"
            )
            raise HelperLost(
                f"the driver's torch helper process {how} during {_what(message)}"
            ) from e
        if not ok:
            raise value
        return value

    def close(self) -> None:
        with self._lock:
            child, self._child = self._child, None
            self._sent_data = self._pending = False
        if child is None:
            return
        assert child.stdin is not None
        try:
            child.stdin.close()  # end-of-file: the child leaves its loop
        except OSError:
            pass
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def with_data(work: TorchWork | None, bundle: DatasetBundle, trial_data: TrialData) -> TorchWork:
    """`work` (the driver's helper, its dataset installed already), or this process's with the
    dataset installed: the stages after the fit take either."""
    if work is not None:
        return work
    here = TorchWork()
    here.install(bundle, trial_data)
    return here


class Pricer:
    """The searcher's pricer under a size budget: a configuration's Cost, priced in a helper.

    Pickled with the searcher into Tune's state without its helper; restored by a resume, it
    starts a helper of its own at its first call, which ends with the driver's process.
    """

    def __init__(
        self, work: TorchWork | None, input_shape: tuple[int, int, int], num_classes: int
    ) -> None:
        self.work = work
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes

    def __call__(self, config: dict[str, Any]) -> Cost:
        return self._work().run(price, config, self.input_shape, self.num_classes)

    def many(self, configs: list[dict[str, Any]]) -> list[Cost | None]:
        """Each configuration's cost in one call, None where it cannot be built."""
        return self._work().run(prices, configs, self.input_shape, self.num_classes)

    def _work(self) -> TorchWork:
        if self.work is None:
            self.work = TorchHelper()
        return self.work

    def __getstate__(self) -> dict[str, Any]:
        return {"input_shape": self.input_shape, "num_classes": self.num_classes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, work=None)


def _what(message: tuple[Any, ...]) -> str:
    if message[0] == "install":
        return "the dataset's transfer"
    fn = message[1]
    return f"{getattr(fn, '__name__', fn)}()"


def _start_child() -> subprocess.Popen[bytes]:
    # The child must import this checkout's `tuner` (an editable install, or tests run from
    # the repository): the driver's sys.path travels with it.
    env = dict(os.environ)
    here = [p for p in sys.path if p]
    env["PYTHONPATH"] = os.pathsep.join([*here, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.Popen(
        [sys.executable, "-m", "tuner.stages.torch_work"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
    )  # fmt: skip


def _send(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> bytes:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    size = _HEADER.unpack(header)[0]
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError
    return payload


def _serve() -> None:
    """The child: answer calls until end-of-file. Its stdout is the reply channel, so anything
    the work prints goes to stderr, which is the driver's."""
    import signal

    # Ctrl-C reaches every process of the terminal's group: what it means is the driver's to
    # decide (tuner/driver/interrupt.py), which then ends this one; a traceback here would be
    # noise. When the driver dies, this reads end-of-file and leaves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    data: tuple[Any, ...] = ()
    while True:
        try:
            payload = _receive(requests)
        except EOFError:
            return
        try:
            try:
                message = pickle.loads(payload)
            except Exception as e:  # a function or space of a module only the driver has
                raise NotInHelper(f"the helper cannot load the call: {e}") from None
            if message[0] == "install":
                data, value = message[1], None
            else:
                _, fn, args, kwargs = message
                value = fn(*data, *args, **kwargs) if message[0] == "data" else fn(*args, **kwargs)
            reply: tuple[bool, Any] = (True, value)
        except BaseException as e:  # noqa: BLE001 (raised again in the driver)
            reply = (False, e)
        try:
            answer = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            failed = RuntimeError(f"{type(reply[1]).__name__}: {reply[1]} ({e})")
            answer = pickle.dumps((False, failed))
        _send(replies, answer)


# -- the calls (module-level and torch-free to name; each imports torch when it runs) --------


def dry_run(
    space: SearchSpace, input_shape: tuple[int, int, int], num_classes: int, samples: int
) -> CheckReport:
    """search_spaces.check.check_space on the CPU."""
    from search_spaces.check import check_space

    return check_space(
        space, input_shape, num_classes, samples,
        device="cpu",  # 6x quicker than "meta" here: meta kernels import sympy (~1.4 s)
    )  # fmt: skip


def smallest(
    space: SearchSpace, input_shape: tuple[int, int, int], num_classes: int, budget: Budget
) -> tuple[Any, int, int]:
    from search_spaces.check import smallest_cost

    return smallest_cost(space, input_shape, num_classes, budget)


def price(config: dict[str, Any], input_shape: tuple[int, int, int], num_classes: int) -> Cost:
    from tuner.train.cost import model_cost

    return model_cost(config, input_shape, num_classes)


def prices(
    configs: list[dict[str, Any]], input_shape: tuple[int, int, int], num_classes: int
) -> list[Cost | None]:
    """Each configuration's cost, or None where it cannot be built at this shape."""
    from tuner.train.cost import model_cost

    out: list[Cost | None] = []
    for config in configs:
        try:
            out.append(model_cost(config, input_shape, num_classes))
        except Exception:
            out.append(None)
    return out


def score(
    bundle: DatasetBundle, trial_data: TrialData, config: dict[str, Any], trial_dir: Path
) -> TestScore | None:
    from tuner.train.scoring import evaluate_on_test

    return evaluate_on_test(config, trial_dir, bundle, trial_data)


def model_file(
    bundle: DatasetBundle,
    trial_data: TrialData,
    path: Path,
    checkpoint: Path,
    chosen: dict[str, Any],
    source: dict[str, Any],
    provenance: dict[str, Any],
) -> None:
    """model.pt (tuner.deploy.model_file) from `checkpoint`'s kept weights: the configuration,
    scores and source in `chosen` and `source`."""
    from tuner.deploy.model_file import model_record, write_model_file
    from tuner.train.checkpoints import load_best_weights
    from tuner.train.config import TrainConfig
    from tuner.train.trial import normalization

    weights, _ = load_best_weights(checkpoint)
    mean, std = normalization(TrainConfig.from_dict(chosen["config"]), trial_data)
    write_model_file(path, model_record(
        config=chosen["config"], state_dict=weights, input_shape=bundle.input_shape,
        classes=bundle.classes, mean=mean, std=std, val_acc=chosen["val_acc"],
        test_acc=chosen["test_acc"], source=source, provenance=provenance,
    ))  # fmt: skip


def readable_checkpoints(trial_dirs: list[Path]) -> list[tuple[Path | None, list[Path]]]:
    """For each trial directory: its newest checkpoint torch can read, and those passed over
    (tuner.train.checkpoints.newest_readable)."""
    from tuner.train.checkpoints import newest_readable

    found = []
    for trial_dir in trial_dirs:
        chosen, _, skipped = newest_readable(trial_dir)
        found.append((chosen, skipped))
    return found


def gpus() -> dict[str, Any]:
    """CUDA's version and the GPUs this machine has, for provenance.json."""
    try:
        import torch

        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return {"cuda": torch.version.cuda, "gpus": names}
    except Exception:  # provenance must never stop a search
        return {"gpus": []}


def import_torch() -> None:
    import torch  # noqa: F401


def peak_rss_mb() -> float:
    """This process's peak resident memory (bench/scale.py asks the helper before it ends)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    _serve()
