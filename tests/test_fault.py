"""The fault test of scripts/fault_test.py, run in full: 20 SIGKILLs, then an exact finish."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "scripts" / "fault_test.py"


@pytest.mark.slow
def test_twenty_sigkills_lose_nothing_and_end_bit_identical(tmp_path):
    spec = importlib.util.spec_from_file_location("fault_test", SCRIPT)
    fault_test = importlib.util.module_from_spec(spec)
    sys.modules["fault_test"] = fault_test  # its dataclasses look their module up there
    spec.loader.exec_module(fault_test)
    report = fault_test.run_fault_test(tmp_path, kills=20, seed=0)
    assert report.kills == 20
    assert report.kills_inside_a_save >= 1 and report.kills_while_training >= 10
    assert report.corrupt_checkpoints == 0 and report.resumes_failed == 0
    assert report.max_steps_lost <= report.save_every
    assert report.final_weights_identical, report.differences
