"""The provenance section: config, library versions, git revision, seed, hardware."""

from __future__ import annotations

import json

from analysis._load import Experiment
from analysis.report.html import esc
from tuner.experiment import PROVENANCE_JSON


def _provenance(exp: Experiment) -> str:
    prov = exp.provenance
    if not prov:
        return f'<p class="muted">No {PROVENANCE_JSON} in the experiment.</p>'
    items: list[tuple[str, str]] = [("experiment directory", str(exp.path.resolve()))]
    if prov.get("command"):
        items.append(("command", " ".join(str(c) for c in prov["command"])))
    git = prov.get("git") or {}
    if git:
        items.append(("git", f"{git.get('commit')}" + (" (dirty)" if git.get("dirty") else "")))
    for k, v in sorted((prov.get("libraries") or {}).items()):
        items.append((k, str(v)))
    for k, v in sorted((prov.get("hardware") or {}).items()):
        items.append((f"hardware: {k}", json.dumps(v) if isinstance(v, list | dict) else str(v)))
    for k in ("started", "finished", "seconds"):
        if prov.get(k) is not None:
            items.append((k, str(prov[k])))
    if prov.get("config"):
        items.append(("search config", json.dumps(prov["config"], sort_keys=True)))
    body = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return f'<dl class="prov">{body}</dl>'
