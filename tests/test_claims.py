"""The claims ledger: prove/control assert and record, the claim list follows the course map."""

import re
from pathlib import Path

import pytest

from lessons.claims import CLAIMS, control, passes, prove, read_ledger

ROOT = Path(__file__).resolve().parents[1]
COURSE_MAP = ROOT.parent / "shared" / "COURSE.md"


def test_claims_are_numbered_c1_to_cn_each_with_a_lesson_and_a_statement():
    assert list(CLAIMS) == [f"C{i}" for i in range(1, len(CLAIMS) + 1)]
    assert all(re.fullmatch(r"\d\d[a-z]?", lesson) and len(text) > 20 for lesson, text in CLAIMS.values())


def test_claims_follow_the_course_map_where_it_is_beside_the_checkout():
    if not COURSE_MAP.exists():  # a checkout without shared/: only the numbering test above applies
        return
    rows = re.findall(r"^\| (C\d+) \| (.+?) \| (\w+) \|$", COURSE_MAP.read_text(), re.M)
    assert {c: (lesson, text) for c, text, lesson in rows} == CLAIMS


def test_prove_and_control_assert_and_record(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_LEDGER_DIR", str(tmp_path))
    assert prove("C4", 0.01, 0.02, what="energy distance") == 0.01
    control("C4", 0.5, 0.02, what="energy distance, wrong eta")
    prove("C28", 0.99, 0.9, sense=">=", what="accuracy")
    with pytest.raises(AssertionError, match="C4 fails"):
        prove("C4", 0.03, 0.02, what="too far")
    with pytest.raises(AssertionError, match="cannot tell right from wrong"):
        control("C28", 0.95, 0.9, sense=">=", what="a control that passes")
    rows = read_ledger(tmp_path)
    assert [(r["claim"], r["kind"], r["ok"]) for r in rows] == [
        ("C4", "proof", True),
        ("C4", "proof", False),
        ("C4", "control", True),
        ("C28", "proof", True),
        ("C28", "control", False),
    ]


def test_nan_never_passes_and_bad_input_is_refused():
    assert not passes(float("nan"), 1.0) and not passes(float("nan"), 1.0, ">=")
    with pytest.raises(ValueError, match="unknown claim"):
        prove("C99", 0.0, 1.0)
    with pytest.raises(ValueError, match="sense"):
        prove("C1", 0.0, 1.0, sense="<")
    with pytest.raises(ValueError, match="NaN"):
        control("C1", 0.0, float("nan"))
