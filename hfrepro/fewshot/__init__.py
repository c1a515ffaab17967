"""Stage 6: zero-, one- and few-shot in-context evaluation (GPT-3, "Language Models are Few-Shot Learners").

The reproduction is `recipes/fewshot.py`; tasks are lm-evaluation-harness task YAMLs (`tasks.py`, `tasks/`),
scored by hfrepro's own evaluator (`evaluator.py`); `report.py` writes the results folder.
"""
