"""The claims ledger: prove/control assert and record, the claim list follows the course map."""

import re
from pathlib import Path

import pytest

from lessons.claims import CLAIMS, PENDING, control, passes, prove, read_ledger

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


def test_every_claim_of_an_existing_lesson_has_a_proof_and_a_control_marked_in_it():
    """grep-able markers: `# proves Cn` and `# control for Cn` in the lesson's notebook (the ledger checks values)."""
    missing = []
    for claim, (lesson, _) in CLAIMS.items():
        notebooks = list((ROOT / "notebooks").glob(f"{lesson}_*.py"))
        if not notebooks or claim in PENDING:
            continue  # a lesson not written yet, or a claim whose open issue has not proven it yet
        text = notebooks[0].read_text()
        for marker in (f"# proves {claim}", f"# control for {claim}"):
            if not re.search(re.escape(marker) + r"\b", text):
                missing.append(f"{marker} in {notebooks[0].name}")
    assert not missing, "claims without their markers: " + "; ".join(missing)


def test_pending_claims_are_claims_and_name_their_issue():
    assert set(PENDING) <= set(CLAIMS) and all("issue" in why for why in PENDING.values())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_value_never_proves_nor_controls(bad, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_LEDGER_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="the value of C4 .energy distance. is (NaN|infinite)"):
        prove("C4", bad, 0.02, what="energy distance")
    with pytest.raises(ValueError, match="measurement went wrong"):
        control("C4", bad, 0.02)  # a NaN fails '<=', so it would look like a rejected control
    with pytest.raises(ValueError, match="threshold of C4 is (NaN|infinite)"):
        prove("C4", 0.01, bad, sense=">=")
    assert read_ledger(tmp_path) == []  # nothing was recorded


def test_claim_ids_and_operators_are_checked():
    with pytest.raises(ValueError, match="did you mean 'C4'"):
        prove("c4", 0.0, 1.0)
    with pytest.raises(ValueError, match="the letter C and its number, as a string: 'C1' to 'C"):
        control(4, 2.0, 1.0)
    with pytest.raises(ValueError, match="unknown claim 'C0'"):
        prove("C0", 0.0, 1.0)
    for sense in ("<", "lt", None, "=="):
        with pytest.raises(ValueError, match="sense must be '<=' .* or '>='"):
            prove("C1", 0.0, 1.0, sense=sense)
    with pytest.raises(ValueError, match="sense"):
        passes(0.0, 1.0, ">")
    with pytest.raises(TypeError, match="what must be a short sentence"):
        prove("C1", 0.0, 1.0, what=3)


def test_values_must_be_numbers_and_tensors_or_numpy_scalars_are_read(tmp_path, monkeypatch):
    import numpy as np
    import torch

    monkeypatch.setenv("COURSE_LEDGER_DIR", str(tmp_path))
    with pytest.raises(TypeError, match="the value of C1 must be a real number, got str"):
        prove("C1", "0.5", 1.0)
    with pytest.raises(TypeError, match="threshold .* must be a real number"):
        prove("C1", 0.5, [1.0])
    with pytest.raises(ValueError, match="one number, got a tensor of shape \\(2,\\)"):
        prove("C1", torch.tensor([0.1, 0.2]), 1.0)
    with pytest.raises(TypeError, match="value must be a real number"):
        passes("a", 1.0)
    assert prove("C1", torch.tensor(0.5, requires_grad=True) * 1, 1.0) == 0.5
    assert prove("C1", np.float32(0.25), np.float64(1.0)) == 0.25
    with pytest.raises(ValueError, match="NaN"):
        prove("C1", torch.tensor(float("nan")), 1.0)


def test_a_damaged_ledger_row_is_named(tmp_path):
    (tmp_path / "C4.proof.x.json").write_text('{"claim": "C4", "kind": ')
    with pytest.raises(ValueError, match="C4.proof.x.json is not valid JSON"):
        read_ledger(tmp_path)
    (tmp_path / "C4.proof.x.json").write_text('{"claim": "four"}')
    with pytest.raises(ValueError, match="is not a claims row"):
        read_ledger(tmp_path)


def test_read_ledger_refuses_a_number_or_a_file_as_the_folder(tmp_path):
    with pytest.raises(TypeError, match="folder must be the ledger folder.*got int 123"):
        read_ledger(123)
    row = tmp_path / "C1.proof.x.json"
    row.write_text("{}")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        read_ledger(row)
    assert read_ledger(tmp_path / "not-yet") == []  # no lesson ran yet: nothing to read, not an error
