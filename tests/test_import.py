"""Models from elsewhere: TorchScript and torch.export files imported as run folders, torchvision classifiers
by name, and any nn.Module held in memory, through the same analyses."""

import pytest
import torch
import torchvision
from typer.testing import CliRunner

from facexai.cli import app
from facexai.data import load_dataset
from facexai.data.augment import Preprocess
from facexai.emotions import SEVEN
from facexai.errors import ConfigError
from facexai.explain.analysis import ExplainConfig, SubjectConfig, explain, load_subject, occlusion, saliency
from facexai.models import create_model, get_spec
from facexai.report.findings import write_occlusion, write_saliency
from facexai.report.report import write_report
from facexai.runs import Run, import_model, open_run

PRE = dict(input_size=48, channels=1, mean=(0.5,), std=(0.25,), classes=SEVEN)
QUIET = dict(n_boot=20, sanity_n=0, ig_steps=4, progress=False)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """21 synthetic test faces, 48x48 grey (a data set with no model of its own)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEXAI_CACHE", str(tmp_path_factory.mktemp("cache")))
        return load_dataset("synthetic", synthetic_n=140)


@pytest.fixture(scope="module")
def seed_network():
    torch.manual_seed(0)
    return create_model("seed_vgg", 7, 1).eval()


def exported(model, tmp_path, kind):
    x = torch.zeros(2, 1, 48, 48)
    if kind == "torchscript":
        path = tmp_path / "net.pt"
        torch.jit.trace(model, x).save(str(path))
    else:
        path = tmp_path / "net.pt2"
        program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
        torch.export.save(program, str(path))
    return path


@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_an_imported_file_gives_the_original_s_answers(seed_network, faces, tmp_path, kind):
    folder = import_model(exported(seed_network, tmp_path, kind), tmp_path / "run", **PRE)
    imported = open_run(folder, "cpu")
    original = Run.of(seed_network, Preprocess(48, 1, (0.5,), (0.25,)), SEVEN, cam_layer="features.2.8", device="cpu")
    a = load_subject(imported, SubjectConfig(limit=7, device="cpu"), data=faces)
    b = load_subject(original, SubjectConfig(limit=7, device="cpu"), data=faces)
    assert torch.equal(a.preds, b.preds)
    for method in ("occlusion", "ig"):
        x, y = explain(a, method, ExplainConfig(**QUIET)).regions, explain(b, method, ExplainConfig(**QUIET)).regions
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)
    with pytest.raises(ConfigError, match="imported .* file keeps none"):
        explain(a, "gradcam", ExplainConfig(**QUIET))


def test_a_plain_torchvision_model_goes_through_saliency_occlusion_and_the_report(faces, tmp_path):
    net = torchvision.models.resnet18(num_classes=7)  # built here, never trained by facexai
    net.conv1 = torch.nn.Conv2d(1, 64, 3, padding=1, bias=False)
    run = Run.of(net, Preprocess(48, 1, (0.5,), (0.25,)), SEVEN, cam_layer="layer4", device="cpu")
    subject = load_subject(run, SubjectConfig(limit=7, device="cpu"), data=faces)
    cfg = ExplainConfig(methods=("gradcam",), fills=("blur",), **QUIET)
    rows, _ = saliency(subject, cfg)
    assert {r["method"] for r in rows} == {"gradcam"} and len(occlusion(subject, cfg)[0]) > 0
    write_saliency(tmp_path, subject, cfg, "t0", "abc")
    write_occlusion(tmp_path, subject, cfg, "t0", "abc")
    assert "## Headline per emotion" in write_report(tmp_path).read_text()


def test_torchvision_classifiers_by_name_take_small_grey_faces_and_transformers_are_refused():
    model = create_model("torchvision:resnet18", 7, 1).eval()
    assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 7) and get_spec("torchvision:resnet18").cam_layer == "layer4"
    with pytest.raises(ConfigError, match="built for one input size"):
        create_model("torchvision:vit_b_16")
    with pytest.raises(ConfigError, match="unknown torchvision classifier 'resnet9000'"):
        create_model("torchvision:resnet9000")


def test_bad_model_files_are_one_line_errors_and_write_nothing(seed_network, tmp_path):
    args = ["--input-size", "48", "--channels", "1", "--mean", "0.5", "--std", "0.25"]
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    good = exported(seed_network, tmp_path, "torchscript")
    for file, extra, words in (
        (junk, [], "not a torchscript model file"),
        (tmp_path / "photo.png", [], "model file not found"),
        (good, ["--classes", "8"], "returns (2, 7) for 2 inputs, expected (2, 8)"),
        (good, ["--channels", "3", "--mean", ".5,.5,.5", "--std", ".2,.2,.2"], "does not run on (2, 3, 48, 48)"),
    ):
        result = CliRunner().invoke(app, ["import-model", str(file), "--out", str(tmp_path / "run"), *args, *extra])
        assert result.exit_code == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "run").exists()
