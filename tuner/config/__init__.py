"""The search's options and config: SearchConfig (search_config.py), the flags --help shows
(options.py), search.toml / --config files (config_file.py) and the objectives (objectives.py).
The standard library only: `tuner --help` answers without torch, Ray or Optuna."""
