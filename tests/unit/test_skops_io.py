"""skops imported with cached trusted lists (blocks/skops_io.py) trusts exactly what skops trusts on
its own. Each case runs in a fresh process: the point is what an import does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What a process reports: how its trusted lists were made, the lists, and what skops finds
# untrusted in two fitted models (the second holds sklearn internals: losses, a bin mapper).
PROBE = """
import json, sys
import numpy as np
{importer}
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from blocks.skops_io import TRUSTED, trusted_lists
trusted = sys.modules[TRUSTED]
X = np.random.default_rng(0).normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int)
models = [make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
          HistGradientBoostingClassifier(max_iter=5).fit(X, y)]
untrusted = [skops.io.get_untrusted_types(data=skops.io.dumps(m)) for m in models]
back = skops.io.loads(skops.io.dumps(models[1]), trusted=untrusted[1])
same = bool((back.predict(X) == models[1].predict(X)).all())
print(json.dumps({{"cached": "cached by ct" in (trusted.__doc__ or ""), "lists": trusted_lists(trusted),
                  "untrusted": untrusted, "round_trip": same}}))
"""
VIA_CT = "from blocks.skops_io import load; skops = type('m', (), {'io': load()})"
PLAIN = "import skops.io, skops"


def probe(importer: str, cache: Path) -> dict[str, object]:
    env = {**os.environ, "CT_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(importer=importer)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return dict(json.loads(out.stdout.splitlines()[-1]))


def test_cached_lists_are_the_ones_skops_builds(tmp_path):
    plain = probe(PLAIN, tmp_path)
    first = probe(VIA_CT, tmp_path)  # no cache yet: the real module, and the file written
    assert (tmp_path / "skops-trusted-types.json").is_file()
    second = probe(VIA_CT, tmp_path)
    assert (plain["cached"], first["cached"], second["cached"]) == (False, False, True)
    lists = plain["lists"]
    assert isinstance(lists, dict) and len(lists) >= 7
    assert len(lists["SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 150
    assert first["lists"] == lists and second["lists"] == lists
    assert second["untrusted"] == plain["untrusted"]
    assert second["untrusted"][0] == []  # type: ignore[index]
    assert second["round_trip"] is True


def test_a_corrupt_or_foreign_cache_falls_back_to_skops(tmp_path):
    cache = tmp_path / "skops-trusted-types.json"
    cache.write_text("{not json")
    assert probe(VIA_CT, tmp_path)["cached"] is False
    stored = json.loads(cache.read_text())  # rewritten by the real module
    assert stored["lists"]["SKLEARN_ESTIMATOR_TYPE_NAMES"]
    stored["versions"]["scikit-learn"] = "0.0.1"  # another installation's lists
    cache.write_text(json.dumps(stored))
    assert probe(VIA_CT, tmp_path)["cached"] is False
    assert probe(VIA_CT, tmp_path)["cached"] is True
