"""`gemsql serve`: a fine-tuned model and named SQLite databases behind an HTTP API and a web page.

Only the databases named at start can be queried, by name (clients never send paths), always
read-only through the evaluation sandbox. Questions that arrive together share batched generation
(`batcher.py`); limits on body size, question length and waiting questions keep one client from
starving the rest. The page at `/` (`index.html`, no external scripts) is a playground over the API.
"""

from gemsql.serve.app import Database, ServeLimits, create_app, load_databases, model_generator, serve

__all__ = ["Database", "ServeLimits", "create_app", "load_databases", "model_generator", "serve"]
