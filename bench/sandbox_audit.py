"""Run the hostile-SQL corpus through the sandbox and write docs/sandbox.json.

    python bench/sandbox_audit.py            # from the repository root
"""

import json
import sys
import tempfile
from pathlib import Path

from gemsql.evaluate.hostile import audit
from gemsql.evaluate.sandbox import Limits

LIMITS = Limits(timeout_s=0.5)
SLACK_S = 0.5

with tempfile.TemporaryDirectory() as tmp:
    result = audit(Path(tmp), LIMITS, slack_s=SLACK_S)
out = {**result.summary(), "runs": result.runs, "refused_or_failed": result.refused,
       "timeout_s": LIMITS.timeout_s, "slack_s": SLACK_S, "details": result.details,
       "command": "python bench/sandbox_audit.py"}
Path("docs").mkdir(exist_ok=True)
Path("docs/sandbox.json").write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps(result.summary()))
sys.exit(0 if not (result.files_changed or result.over_limit or result.crashes) else 1)
