"""The search's stages that need neither Ray nor Optuna: the checks before Ray starts
(preflight.py, disk.py), the experiment's record (provenance.py, its one writer), what the
search prints (console.py), the run's bundle (search_run.py), and after the fit the winner
(best.py, best.json's one writer) and the confirm stage's runs scored (confirm_runs.py)."""
