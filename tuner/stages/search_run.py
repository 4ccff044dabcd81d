"""One run of a search (a new one, or a resume) as the stages after the preflight see it: what
fit and the results need, passed as one typed object instead of ten arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from tuner.config.search_config import SearchConfig
from tuner.data import DatasetBundle
from tuner.experiment.records import ProvenanceRecord
from tuner.stages.provenance import Timings
from tuner.stages.torch_work import TorchWork
from tuner.train.trial_data import TrialData

if TYPE_CHECKING:
    from search_spaces import SearchSpace


@dataclass
class SearchRun:
    cfg: SearchConfig
    # cfg.search_space(), looked up once when the run starts (a user's space file is imported
    # then) and handed to every stage that samples, prices or names it.
    space: SearchSpace
    bundle: DatasetBundle
    trial_data: TrialData
    record: ProvenanceRecord  # provenance.json, completed as the run goes and written at its end
    stream: TextIO
    timings: Timings
    we_started_ray: bool  # Ray is shut down after the fit only if this run started it
    restore: bool = False  # a resume: Tune's saved experiment is restored, not built
    storage: Any = None  # the study's database, when search() opened it beside Ray's start
    retry: set[str] = field(default_factory=set)  # errored trials a resume runs again
    raise_samples: int | None = None  # `tuner resume --samples N`: the search runs to N trials
    # Where the torch work runs (the pricing under a size budget, the test scoring, model.pt):
    # the driver's helper process (tuner/stages/torch_work.py), closed when the run ends.
    torch: TorchWork = field(default_factory=TorchWork)
