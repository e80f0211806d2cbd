"""lessons.exercises: the switch, review and check, the shipped solutions, and every stub in the lessons.

The lessons run once in CI, with COURSE_EXERCISES=solutions, so each check there sees the shipped solution.
The stubs themselves are run here instead: each one, taken out of its notebook, must give "not done yet".
"""

import ast
import inspect
from pathlib import Path

import pytest
import torch

from lessons import exercises
from lessons.exercises import EXERCISES, LESSON_CHECKS, SWITCH, check, exercise_mode, review, solution

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*_*.py"))


def _raises_not_implemented(node: ast.FunctionDef) -> bool:
    last = node.body[-1]
    return (
        isinstance(last, ast.Raise)
        and isinstance(last.exc, ast.Call)
        and getattr(last.exc.func, "id", None) == "NotImplementedError"
    )


def notebook_stubs() -> list:
    """(lesson, stub, the statement after it) for each top-level function of a lesson that raises NotImplementedError."""
    found = []
    for path in NOTEBOOKS:
        body = ast.parse(path.read_text()).body
        for i, node in enumerate(body):
            if isinstance(node, ast.FunctionDef) and _raises_not_implemented(node):
                found.append((path.stem, node, body[i + 1] if i + 1 < len(body) else None))
    return found


STUBS = notebook_stubs()


def stub_function(node: ast.FunctionDef):
    """The notebook's own stub, compiled alone (running it must not need the rest of the notebook)."""
    namespace = {}
    exec(compile(ast.Module([node], type_ignores=[]), "<stub>", "exec"), namespace)
    return namespace[node.name]


def test_every_exercise_has_one_stub_in_its_lesson_and_every_stub_is_an_exercise():
    names = [(lesson, node.name) for lesson, node, _ in STUBS]
    assert sorted(names) == sorted((lesson, name) for name, (lesson, _) in EXERCISES.items())
    assert len(EXERCISES) >= 9
    for lesson in sorted({module.LESSON for module in LESSON_CHECKS}):  # every lesson with checked exercises
        wanted = (
            1 if lesson == "00_welcome" else 3
        )  # the welcome lesson has one, on the path every lesson uses
        assert sum(1 for stub_lesson, _ in names if stub_lesson == lesson) >= wanted, lesson


@pytest.mark.parametrize("lesson, node, after", STUBS, ids=[node.name for _, node, _ in STUBS])
def test_each_stub_is_followed_by_its_check_and_says_not_done_yet(lesson, node, after, capsys, monkeypatch):
    call = after.value if isinstance(after, ast.Expr) else None
    assert isinstance(call, ast.Call) and getattr(call.func, "id", None) == "check", "check(...) right after"
    assert [ast.literal_eval(call.args[0]), call.args[1].id] == [node.name, node.name]
    hint = node.body[-1].exc.args[0].value
    assert hint.startswith("hint: ")
    params = [a.arg for a in node.args.args]
    assert params == list(inspect.signature(solution(node.name)).parameters), "the stub and solution agree"

    stub = stub_function(node)
    feedback = review(node.name, stub)
    assert feedback.status == "not done yet" and hint in feedback.text
    monkeypatch.delenv(SWITCH, raising=False)
    check(node.name, stub)  # a fresh notebook: prints, does not raise
    assert "not done yet" in capsys.readouterr().out
    monkeypatch.setenv(SWITCH, "solutions")  # CI: the same cell checks the shipped solution, which passes
    check(node.name, stub)
    out = capsys.readouterr().out
    assert f"{SWITCH}=solutions: the shipped solution" in out and f"{node.name}: right." in out


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_every_shipped_solution_passes_its_check_and_a_check_says_the_same_twice(name):
    first = review(name, solution(name))
    assert first.passed, first.text
    assert review(name, solution(name)).text == first.text  # seeded: the same inputs, the same words


def test_the_switch_reads_learner_by_default_and_refuses_a_typo(monkeypatch):
    monkeypatch.delenv(SWITCH, raising=False)
    assert exercise_mode() == "learner"
    monkeypatch.setenv(SWITCH, " Solutions ")
    assert exercise_mode() == "solutions"
    monkeypatch.setenv(SWITCH, "solution")
    with pytest.raises(ValueError, match="COURSE_EXERCISES 'solution'; choose 'learner'"):
        exercise_mode()


def test_a_wrong_answer_is_reported_in_learner_mode_and_fails_ci_in_solutions_mode(capsys, monkeypatch):
    def ddim_step(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):  # alpha_t where alpha_s belongs
        return alpha_t * (x - sigma_t * eps_hat) / alpha_t + sigma_s * eps_hat

    monkeypatch.delenv(SWITCH, raising=False)
    check("ddim_step", ddim_step)
    assert "not right yet" in capsys.readouterr().out
    monkeypatch.setenv(SWITCH, "solutions")  # a filled-in wrong answer is not replaced: CI fails
    with pytest.raises(AssertionError, match="ddim_step does not pass its check"):
        check("ddim_step", ddim_step)


def test_errors_in_the_learners_code_become_feedback_not_a_crash():
    def ddim_step(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
        return x @ torch.ones(3, 3)  # a shape error inside the learner's code

    feedback = review("ddim_step", ddim_step)
    assert feedback.status == "not right yet" and "It raised RuntimeError" in feedback.text

    def ddim_step_wrong_shape(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
        return x[:, 0]

    text = review("ddim_step", ddim_step_wrong_shape).text
    assert "has shape (64,); it should have shape (64, 2)" in text


def test_a_check_leaves_the_notebooks_random_state_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    review("hutchinson_divergence", solution("hutchinson_divergence"))  # draws probes and network weights
    assert torch.equal(torch.get_rng_state(), before)
    control = torch.get_rng_state()
    torch.rand(1)  # control: a draw does change the state that the comparison reads
    assert not torch.equal(torch.get_rng_state(), control)


def test_bad_calls_are_refused_in_words():
    with pytest.raises(ValueError, match="there is no exercise 'ddim'; the exercises are: .*ddim_step"):
        review("ddim", print)
    with pytest.raises(TypeError, match=r"takes your function itself, e.g. check\('ddim_step', ddim_step\)"):
        review("ddim_step", 3.0)
    with pytest.raises(TypeError, match="takes your function itself"):
        review("ddim_step", torch.nn.Linear)  # a class, not a function


def test_solutions_mode_without_a_solutions_folder_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(exercises, "SOLUTIONS_DIR", tmp_path / "solutions")
    with pytest.raises(FileNotFoundError, match="a handout has no solutions/ folder"):
        solution("ddim_step")
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "02_ddim_and_sdes.py").write_text("def other():\n    pass\n")
    with pytest.raises(ValueError, match="has no function ddim_step"):
        solution("ddim_step")
