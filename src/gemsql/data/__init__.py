"""Data stage: `prepare` reads rows, converts them to chat messages and writes the train/test splits."""

from gemsql.data.prepare import Prepared, prepare

__all__ = ["Prepared", "prepare"]
