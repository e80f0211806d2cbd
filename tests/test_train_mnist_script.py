"""scripts/train_mnist.py end to end at a tiny size: what each option trains, what it records, what it refuses."""

import pytest
import torch
from script_helpers import load_script

from lessons.image_training import load_image_model

TINY = ["--size", "tiny", "--steps", "2", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def script():
    return load_script("scripts/train_mnist.py")


def test_an_eps_flow_model_and_a_reflow_with_its_control_record_their_settings(script, tmp_path):
    parent, eps = tmp_path / "cfm.pt", tmp_path / "eps.pt"
    script.main(["--method", "cfm", "--classes", "--out", str(parent), *TINY])
    script.main(["--method", "cfm", "--classes", "--prediction", "eps", "--out", str(eps), *TINY])
    assert load_image_model(parent)[1]["prediction"] == "velocity"
    assert load_image_model(eps)[1]["prediction"] == "eps"
    reflow, control = tmp_path / "reflow.pt", tmp_path / "shuffled.pt"
    script.main(
        [
            "--method",
            "cfm",
            "--classes",
            "--coupling",
            "reflow",
            "--init",
            str(parent),
            "--reflow-pairs",
            "20",
        ]
        + ["--reflow-nfe", "1", "--out", str(reflow), "--control-out", str(control), *TINY]
    )
    (r_model, r), (c_model, c) = load_image_model(reflow), load_image_model(control)
    assert r["coupling"] == c["coupling"] == "reflow"
    assert (r["reflow"]["shuffled"], c["reflow"]["shuffled"]) == (False, True)
    assert r["reflow"]["parent_sha256"] == script.file_sha256(parent) == c["reflow"]["parent_sha256"]
    assert r["reflow"]["pairs"] == 20 and r["reflow"]["parent_steps"] == 2
    # the two start from the same parent and see the same images, with the noise paired or shuffled
    assert any(
        not torch.equal(a, b) for a, b in zip(r_model.state_dict().values(), c_model.state_dict().values())
    )


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--method", "ddpm", "--prediction", "eps"], "--prediction eps is for flow matching"),
        (["--method", "ddpm", "--coupling", "ot"], "--coupling ot pairs noise with images"),
        (["--method", "cfm", "--coupling", "reflow"], "--coupling reflow needs --init"),
        (["--method", "cfm", "--control-out", "c.pt"], "--control-out trains the control of a reflow"),
    ],
)
def test_bad_combinations_are_refused_in_words_before_any_work(script, tmp_path, capsys, extra, match):
    out = tmp_path / "never.pt"
    with pytest.raises(SystemExit):
        script.main([*extra, "--out", str(out), *TINY])
    assert match in capsys.readouterr().err and not out.exists()
