"""What calibrating and triangulating import: optional heavy libraries only where they are used
(a session worker and every CLI command pay the imports at start-up)."""
import subprocess
import sys


def test_calibration_does_not_import_the_optional_libraries():
    code = ("import sys, epiflow.calibration.from_people, epiflow.calibration.triangulation, "
            "epiflow.pipeline.stages; print(sorted(m for m in ('scipy.signal', 'kornia') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # scipy.signal (0.35 s) is for Butterworth smoothing, kornia (0.2 s) for the per-frame
    # baseline: imported when those run
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
