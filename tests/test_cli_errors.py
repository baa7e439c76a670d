"""The standing battery of bad inputs: each is exit status 2, one line on stderr naming the file or value and
what was expected, and nothing left behind. Run in-process (a subprocess costs seconds of imports each).
New commands add their rows here."""

import os
import subprocess
import sys

import pytest
from conftest import SYNTHETIC_RUN
from formats import random_image, write_image
from typer.testing import CliRunner

from facexai import catalogue
from facexai.cli import app


def files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A working folder with bad inputs in it: a truncated checkpoint, a broken TOML, an image folder with a
    broken PNG, a text file posing as a photo."""
    bad_run = tmp_path / "badrun"
    bad_run.mkdir()
    for name in ("config.json", "metrics.json"):
        (bad_run / name).write_bytes((SYNTHETIC_RUN / name).read_bytes())
    (bad_run / "checkpoint.pt").write_bytes((SYNTHETIC_RUN / "checkpoint.pt").read_bytes()[:1000])
    (tmp_path / "bad.toml").write_text("epochs = [\n")
    (tmp_path / "faces" / "happy").mkdir(parents=True)
    write_image(tmp_path / "faces" / "happy" / "a.png", random_image(0))
    (tmp_path / "faces" / "happy" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "faces" / "grumpy").mkdir()
    write_image(tmp_path / "faces" / "grumpy" / "c.png", random_image(1))
    (tmp_path / "note.jpg").write_text("not an image")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


RUN = str(SYNTHETIC_RUN)
BAD = [  # (arguments, words the one line must hold); "{t}" is the temporary folder
    (["evaluate", "{t}/badrun"], ["checkpoint.pt", "not a readable torch file"]),
    (["evaluate", "{t}/nowhere"], ["not a run folder", "nowhere"]),
    (["occlude", "--run", RUN, "--limit", "0"], ["limit", "positive", "0"]),
    (["occlude", "--run", RUN, "--limit", "-5"], ["limit", "positive", "-5"]),
    (["occlude", "--run", RUN, "--region", "ears"], ["unknown region 'ears'", "mouth"]),
    (["occlude", "--run", RUN, "--fill", "paint"], ["paint", "blur"]),
    (["saliency", "--run", RUN, "--methods", "gradcam,magic"], ["magic", "gradcam"]),
    (["saliency", "--run", RUN, "--device", "cuda"], ["cuda"]),
    (["train", "synthetic", "--epochs", "0", "--out", "{t}/runs"], ["epochs must be at least 1, got 0"]),
    (["train", "synthetic", "--lr", "-1", "--out", "{t}/runs"], ["lr must be at least 0.0, got -1.0"]),
    (["train", "synthetic", "--model", "vgg99", "--out", "{t}/runs"], ["unknown model 'vgg99'"]),
    (["train", "synthetic", "--config", "{t}/bad.toml"], ["bad.toml", "not valid TOML"]),
    (["train", "synthetic", "--config", "{t}/none.toml"], ["config file not found", "none.toml"]),
    (["train", "synthetic", "--resume", "{t}/work"], ["cannot resume", "state.pt"]),
    (["data", "check", "ferplus", "--data-root", "{t}/nowhere"], ["FER+ data root not found", "nowhere"]),
    (["data", "check", "imagefolder", "--data-root", "{t}/faces"], ["grumpy"]),
    (["evaluate", RUN, "--folder", "{t}/faces", "--out", "{t}/o"], ["grumpy", "happy"]),
    (["explain", "{t}/note.jpg", "--run", RUN, "--out", "{t}/o"], ["note.jpg"]),
    (["explain", "{t}/work", "--run", RUN, "--out", "{t}/o"], ["work"]),
    (["import-model", "{t}/note.jpg", "--out", "{t}/m", "--input-size", "48", "--channels", "1", "--mean", "0.5",
      "--std", "0.25"], ["note.jpg"]),  # fmt: skip
    (["scorecard", "--run", RUN, "--methods", "gradcam", "--faithfulness-n", "-1"], ["faithfulness"]),
]


@pytest.mark.parametrize(("args", "words"), BAD, ids=[" ".join(a[:3]) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(place, args, words):
    before, fixture = files(place), files(SYNTHETIC_RUN)
    result = CliRunner().invoke(app, [a.format(t=place) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    message = lines[-1]
    assert all(w in message for w in words), message
    assert "Traceback" not in result.output and len([x for x in lines if x.startswith("error")]) <= 1
    assert len([x for x in lines if not x.startswith("analysing")]) == 1, result.stderr  # one line (after the
    # "analysing RUN" note of the analysis commands)
    assert files(place) == before and files(SYNTHETIC_RUN) == fixture  # nothing half-written, nowhere


def test_list_and_help_answer_without_importing_torch():
    """`facexai --help` and `facexai list` import no heavy module: they answer in well under 2 s anywhere."""
    code = (
        "import sys; from typer.testing import CliRunner; from facexai.cli import app; "
        "r = [CliRunner().invoke(app, a) for a in (['--help'], ['list'], ['train', '--help'])]; "
        "assert all(x.exit_code == 0 for x in r), [x.output for x in r]; "
        "heavy = [m for m in ('torch', 'torchvision', 'captum', 'pytorch_grad_cam') if m in sys.modules]; "
        "assert not heavy, heavy; print(r[2].output)"
    )
    env = os.environ | {"COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "(default: runs/)" in done.stdout  # the bracketed text survives rich's markup


def test_the_catalogue_names_what_the_registries_hold():
    from facexai.explain.methods import METHODS
    from facexai.explain.references import REFERENCES

    assert {n: (m.label, m.kind) for n, m in METHODS.items()} == catalogue.METHODS
    assert tuple(REFERENCES) == catalogue.REFERENCES
