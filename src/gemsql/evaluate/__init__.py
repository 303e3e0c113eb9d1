"""Evaluation stage: `evaluate` scores predictions by executing them; `sandbox` runs model SQL safely."""

from gemsql.evaluate.report import compare, evaluate, summarize

__all__ = ["compare", "evaluate", "summarize"]
