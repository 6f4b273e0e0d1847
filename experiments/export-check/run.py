"""Check an exported flashinfer-bench Solution on the GPU: write its sources to a folder,
import its main.py, run its DPS entry point through decodekit's check (fp64 oracle, NaN-poisoned
outputs, random and extreme inputs) at every tuned batch size and a few others."""

import importlib.util
import sys
import tempfile
from pathlib import Path

from decodekit.measure.check import check
from decodekit.views import export

doc = export.solution("best", "sm_90a")
folder = Path(tempfile.mkdtemp())
for s in doc["sources"]:
    (folder / s["path"]).write_text(s["content"])
spec = importlib.util.spec_from_file_location("solution_main", folder / "main.py")
main = importlib.util.module_from_spec(spec)
spec.loader.exec_module(main)
failed = 0
for B in (1, 3, 4, 8, 16, 32, 48, 64, 100):
    for profile in ("random", "extreme"):
        res = check(main.run, B, device="cuda", profile=profile)
        failed += not res.passed
        print(
            f"{doc['name']} B={B:<4} {profile:<8} {'pass' if res.passed else 'FAIL'} {res.summary()[:150]}"
        )
print(f"exported solution: {'all passed' if not failed else f'{failed} FAILED'}")
sys.exit(1 if failed else 0)
