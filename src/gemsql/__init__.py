"""gemsql: fine-tune Gemma 3 for text-to-SQL with QLoRA, merge, generate, and measure by executing the SQL.

Python API, one function per stage (each takes a `Config`):
    from gemsql import load_config, prepare, train, merge, generate, evaluate, run
"""

from gemsql.config import Config, load_config

__version__ = "0.1.0"
__all__ = ["Config", "load_config", "prepare", "train", "merge", "generate", "evaluate", "run", "__version__"]


def __getattr__(name: str):
    # Stages import torch/transformers; load them on first use so `gemsql --help` stays fast.
    if name == "prepare":
        from gemsql.data import prepare as fn
    elif name == "train":
        from gemsql.train import train as fn
    elif name == "merge":
        from gemsql.merge import merge as fn
    elif name == "generate":
        from gemsql.generate import generate as fn
    elif name == "evaluate":
        from gemsql.evaluate import evaluate as fn
    elif name == "run":
        from gemsql.pipeline import run as fn
    else:
        raise AttributeError(name)
    return fn
