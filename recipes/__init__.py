"""hfrepro's recipes: one script per stage of the road, each the reproduction itself, read top to bottom.

Run one as `python recipes/<name>.py`, `hfrepro <name>` or `accelerate launch recipes/<name>.py` (the same code,
the same arguments). Installed, this folder is the package `hfrepro.recipes`. Budgets: configs/<name>/*.yaml.
"""
