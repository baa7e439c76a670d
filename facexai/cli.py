"""The facexai command line: parses, calls the Python API, renders with rich. No logic lives here."""

from __future__ import annotations

import dataclasses
import functools
import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from facexai.catalogue import SCORECARD_METHODS
from facexai.config import DATASETS, check_reads
from facexai.errors import ConfigError, FacexaiError, RunNotFoundError

app = typer.Typer(
    help="Which face regions drive a facial-emotion CNN's predictions, measured.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect data sets; write a RAF-DB stand-in tree.", no_args_is_help=True)
app.add_typer(data_app, name="data")
regions_app = typer.Typer(help="Face regions from landmarks.", no_args_is_help=True)
app.add_typer(regions_app, name="regions")
out = Console()
err = Console(stderr=True)


Dataset = Enum("Dataset", {name: name for name in DATASETS}, type=str)  # the names config.DATASETS lists


class LabelMode(str, Enum):
    soft = "soft"
    majority = "majority"
    plurality = "plurality"


class SplitMode(str, Enum):
    official = "official"
    seed_a = "seed-a"


class Split(str, Enum):
    train = "train"
    val = "val"
    test = "test"


FolderOpt = Annotated[
    Path | None,
    typer.Option("--folder", help="A labelled image folder (a subfolder per emotion) instead of the run's data."),
]
ClassMapOpt = Annotated[
    Path | None, typer.Option("--class-map", help='With --folder: a TOML [classes] table, folder = "emotion".')
]
StrictOpt = Annotated[
    bool, typer.Option(help="With --folder: refuse images of classes the model lacks, instead of leaving them out.")
]


def _folder_data(folder: Path | None, class_map: Path | None, run: Path | None, strict: bool):
    """A labelled image folder relabelled to the run's classes, with what was left out or is absent said."""
    if folder is None:
        if class_map is not None:
            raise ConfigError("--class-map reads an image folder's class names; give --folder too")
        return None
    from facexai.config import DataConfig
    from facexai.data import load_dataset
    from facexai.emotions import Emotion
    from facexai.runs import adapt_classes, load_checkpoint

    data = load_dataset(DataConfig(dataset="imagefolder", root=str(folder), class_map=class_map and str(class_map)))
    if run is not None:
        classes = tuple(Emotion(c) for c in load_checkpoint(run)[1]["classes"])
        data = adapt_classes(data, classes, strict)
        excluded = ", ".join(f"{n} {c}" for c, n in data.meta["excluded"].items())
        if excluded:
            err.print(f"left out: {excluded} image(s) of classes the model does not predict")
        if data.meta["absent"]:
            err.print(f"no images of: {', '.join(data.meta['absent'])} (metrics are over the classes present)")
    return data


def domain_errors(fn):
    """A FacexaiError becomes one line on stderr and exit status 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FacexaiError as e:
            err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


DataRoot = Annotated[Path | None, typer.Option("--data-root", help="Folder (or file) of the data set download.")]
LabelOpt = Annotated[LabelMode | None, typer.Option(help="How votes become labels (FER+).")]
ClassesOpt = Annotated[int | None, typer.Option(help="7 (no contempt, seed B) or 8 classes (FER+).")]
SplitOpt = Annotated[SplitMode | None, typer.Option("--split", help="FER2013: official or seed-a (70/20/10).")]


class Variant(str, Enum):
    facs = "facs"
    single_region = "single-region"
    shortcut = "shortcut"


VariantOpt = Annotated[
    Variant | None,
    typer.Option("--variant", help="Synthetic faces: facs prototypes, single-region expressions, or a shortcut cue."),
]


def _only_where_read(dataset: Dataset, label_mode, classes, split, variant=None) -> None:
    given = {"--label-mode": label_mode, "--classes": classes, "--split": split, "--variant": variant}
    check_reads(dataset.value, **given)


def _resumable(partial: Path, dataset: Dataset, given: dict) -> None:
    """--resume continues with the settings saved in the .partial folder; any other would be silently lost."""
    extra = [flag for flag, value in given.items() if value is not None]
    if extra:
        raise ConfigError(f"--resume continues {partial} with its saved settings; drop {', '.join(extra)}")
    saved = partial / "config.json"
    if saved.is_file() and (name := json.loads(saved.read_text())["data"]["dataset"]) != dataset.value:
        raise ConfigError(f"{partial} is a {name} run, not {dataset.value}")


def _metrics_table(m: dict, title: str) -> Table:
    t = Table(title=title)
    t.add_column("emotion")
    t.add_column("n", justify="right")
    t.add_column("recall", justify="right")
    for c in m["classes"]:
        t.add_row(c, str(m["counts"][c]), f"{m['per_class_recall'][c]:.3f}")
    t.add_row("[bold]all", str(m["n"]), f"[bold]{m['accuracy']:.4f}")
    return t


@app.command()
@domain_errors
def train(
    dataset: Annotated[Dataset, typer.Argument(help="Data set to train on.")],
    data_root: DataRoot = None,
    config: Annotated[Path | None, typer.Option(help="Recipe TOML (e.g. experiments/ferplus_seed_b.toml).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    lr: Annotated[float | None, typer.Option(help="Initial learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per batch.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (initialisation, order, augmentation).")] = None,
    model: Annotated[str | None, typer.Option(help="Registered model name (see `facexai list`).")] = None,
    label_mode: LabelOpt = None,
    classes: ClassesOpt = None,
    split: SplitOpt = None,
    variant: VariantOpt = None,
    limit_train: Annotated[
        int | None, typer.Option(help="Train on N training faces only (stratified by class): a quick look.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    bf16: Annotated[
        bool | None, typer.Option("--bf16/--no-bf16", help="bf16 autocast (default: where the hardware has it).")
    ] = None,
    channels_last: Annotated[
        bool | None,
        typer.Option("--channels-last/--no-channels-last",
                     help="channels_last memory format (default: the recipe's, else on; on a GPU at 48x48 fp32 "
                          "contiguous ran faster)."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for torch (with --resume: for the rest of the run).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder that receives the run folder (default: runs/).")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an unfinished run (its .partial folder).")] = None,
    progress: ProgressOpt = True,
) -> None:
    """Train a model with a data set's reference recipe (or --config); writes a run folder."""
    from facexai.config import load_config, override, recipe
    from facexai.training import fit

    _only_where_read(dataset, label_mode, classes, split, variant)
    if resume is not None:
        options = {"--data-root": data_root, "--config": config, "--epochs": epochs, "--lr": lr}
        options |= {"--batch-size": batch_size, "--seed": seed, "--model": model, "--label-mode": label_mode}
        options |= {"--classes": classes, "--split": split, "--variant": variant, "--device": device, "--bf16": bf16,
                    "--channels-last": channels_last, "--limit-train": limit_train}  # fmt: skip
        _resumable(resume, dataset, options | {"--out": out_dir})  # --threads may change: it sets speed only
    cfg = load_config(config) if config else recipe(dataset.value)
    cfg = override(
        cfg,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        model=model,
        device=device,
        bf16=bf16,
        channels_last=channels_last,
        threads=threads,
        **{
            "data.dataset": dataset.value,
            "data.root": str(data_root) if data_root else None,
            "data.label_mode": label_mode.value if label_mode else None,
            "data.classes": classes,
            "data.split": split.value if split else None,
            "data.synthetic_variant": variant.value if variant else None,
            "data.limit_train": limit_train,
        },
    )
    run = fit(cfg, out=out_dir or Path("runs"), resume=resume, progress=progress, console=err, threads=threads)
    out.print(_metrics_table(run.metrics, f"{run.path}: test accuracy {run.metrics['accuracy']:.4f}"))
    out.print(str(run.path))


@app.command()
@domain_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="A finished run folder.")],
    split: Annotated[Split, typer.Option(help="Which split to score.")] = Split.test,
    data_root: DataRoot = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    label_mode: Annotated[
        LabelMode | None,
        typer.Option(help="Read the votes this way instead of the run's (FER+; Barsoum et al. test on majority)."),
    ] = None,
    folder: FolderOpt = None,
    class_map: ClassMapOpt = None,
    strict_classes: StrictOpt = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="With --folder: the folder that receives metrics.json.")
    ] = None,
    threads: ThreadsOpt = None,
    bf16: Annotated[
        bool, typer.Option("--bf16/--no-bf16", help="Score under bf16 autocast (default: fp32, as every score).")
    ] = False,
) -> None:
    """Score a trained run on a split of its data set, or on a labelled image folder (--folder); writes
    metrics-<split>[-<label mode>].json into the run (with --folder: metrics.json into --out)."""
    from facexai.runs import write_evaluation

    mode = label_mode.value if label_mode else None
    data = _folder_data(folder, class_map, run, strict_classes)
    m, path = write_evaluation(
        run, split.value, str(data_root) if data_root else None, device, mode, data, out_dir, bf16, threads
    )
    out.print(_metrics_table(m, f"{run} on {folder or split.value}: accuracy {m['accuracy']:.4f}"))
    out.print(str(path))


@data_app.command("check")
@domain_errors
def data_check(
    dataset: Annotated[Dataset, typer.Argument(help="Data set to check.")],
    data_root: DataRoot = None,
    label_mode: LabelOpt = None,
    classes: ClassesOpt = None,
    split: SplitOpt = None,
) -> None:
    """Load a data set and print images per split and class, what was dropped and why, and train twins."""
    from facexai.config import DataConfig
    from facexai.data import load_dataset
    from facexai.data.base import describe

    _only_where_read(dataset, label_mode, classes, split)
    given = {"label_mode": label_mode and label_mode.value, "classes": classes, "split": split and split.value}
    opts = {k: v for k, v in given.items() if v is not None}
    ds = load_dataset(DataConfig(dataset=dataset.value, root=str(data_root) if data_root else None, **opts))
    facts = describe(ds)
    counts = facts["counts"]
    t = Table(title=f"{dataset.value}: {len(ds)} images, {ds.channels}x{ds.size[0]}x{ds.size[1]}")
    t.add_column("emotion")
    for s in counts:
        t.add_column(s, justify="right")
    for c in ds.classes:
        t.add_row(str(c), *(str(counts[s][str(c)]) for s in counts))
    t.add_row("[bold]total", *(f"[bold]{sum(counts[s].values())}" for s in counts))
    out.print(t)
    if facts["found"]:
        out.print("found before dropping: " + ", ".join(f"{s} {n}" for s, n in facts["found"].items()))
    dropped = facts["dropped"]
    out.print("dropped: " + (", ".join(f"{n} ({why})" for why, n in dropped.items()) if dropped else "none"))
    shown = [f"{s} {twins} of {n}" for s, (twins, n) in facts["twins"].items()]
    out.print("pixel-identical twin in train: " + ", ".join(shown))
    if facts["repeated_names"]:
        rows = [f"line {r['line']} ({r['name']}; line {r['kept_line']} kept)" for r in facts["repeated_names"]]
        out.print("names used twice in fer2013new.csv: " + ", ".join(rows), highlight=False, soft_wrap=True)


@data_app.command("standin")
@domain_errors
def data_standin(
    labels: Annotated[Path, typer.Argument(help="RAF-DB's basic/EmoLabel/list_patition_label.txt.")],
    out_dir: Annotated[Path, typer.Option("--out", help="New folder for the stand-in tree (use as --data-root).")],
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    limit: Annotated[
        int | None, typer.Option(help="Only the first N label lines (RAF-DB lists train first: keep N large).")
    ] = None,
    progress: ProgressOpt = True,
) -> None:
    """Write a RAF-DB basic tree of synthetic faces named and labelled after a real label file (no real images)."""
    from facexai.data.standin import write_rafdb_standin

    out.print(str(write_rafdb_standin(labels, out_dir, seed=seed, limit=limit, progress=progress)))


@app.command("list")
def list_things() -> None:
    """Registered models, data sets, attribution methods and references."""
    from facexai.catalogue import METHODS, REFERENCES
    from facexai.models import list_models

    t = Table(title="models")
    for col in ("name", "input", "Grad-CAM layer", "description"):
        t.add_column(col)
    for s in list_models():
        t.add_row(s.name, f"{s.in_channels}x{s.input_size}x{s.input_size}", s.cam_layer, s.description)
    out.print(t)
    out.print("data sets: " + ", ".join(DATASETS))
    m = Table(title="attribution methods (facexai.attribute / scorecard --methods)")
    for col in ("name", "kind", "what"):
        m.add_column(col)
    for name, (what, kind) in METHODS.items():
        m.add_row(name, kind, what)
    out.print(m)
    out.print("references (occlusion fills, IG baselines): " + ", ".join(REFERENCES))


RunOpt = Annotated[Path | None, typer.Option("--run", help="A finished run folder (default: the newest under runs/).")]
NewOut = Annotated[Path, typer.Option("--out", help="Folder that receives the tables and provenance.json.")]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Folder that receives the tables and provenance.json (default: runs/<kind>/<run name>/; an existing "
        "folder of other files, e.g. results/, gets a <run name>-<kind> subfolder).",
    ),
]
LimitOpt = Annotated[int | None, typer.Option(help="Analyse only the first N images of the split.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
TargetOpt = Annotated[str, typer.Option(help="pred (predicted class) or true (labelled class).")]
DatasetOpt = Annotated[str | None, typer.Option(help="With no --run: the newest run of this data set.")]
ProgressOpt = Annotated[bool, typer.Option(help="Show progress bars.")]
ThreadsOpt = Annotated[
    int | None, typer.Option(help="CPU threads for torch (two torch processes on one core set stall each other).")
]
BatchOpt = Annotated[
    int | None,
    typer.Option(help="Rows per network pass (default: 16 on a CPU, 512 on a GPU; lower it if a GPU runs out of "
                      "memory).", min=1),
]
Bf16Opt = Annotated[
    bool,
    typer.Option(
        "--bf16/--no-bf16",
        help="bf16 autocast in the attribution passes: several times faster on CPUs with AMX or AVX-512 BF16, "
        "and less exact (README: bf16). The explained classes are still the fp32 model's predictions.",
    ),
]


def _run(run: Path | None, dataset: str | None) -> Path:
    from facexai.runs import newest_run

    if run is None:
        run = newest_run("runs", dataset)
        if run is None:
            raise RunNotFoundError(f"no finished run under runs/{' for ' + dataset if dataset else ''}; pass --run")
    return run


def _out(out_dir: Path | None, run: Path, kind: str) -> Path:
    """Where an analysis writes: runs/<kind>/<run name>/ by default; a given folder that already holds other
    files and no analysis of ours (e.g. results/) gets a named subfolder instead of loose files."""
    if out_dir is None:
        return Path("runs") / kind / run.name
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "provenance.json").is_file():
        out_dir = out_dir / f"{run.name}-{kind}"
        err.print(f"{out_dir.parent} holds other files: writing into {out_dir}")
    return out_dir


def _rows(cfg, batch_size: int | None, subject):
    """`cfg` with --batch-size, else the subject's device's default rows per pass."""
    from facexai.explain.analysis import rows_per_pass

    return dataclasses.replace(cfg, batch_size=batch_size or rows_per_pass(subject.run.engine.device))


def _subject(run: Path | None, dataset: str | None, data_root: Path | None, cfg, bf16: bool, folder=None,
             class_map=None, strict=False):  # fmt: skip
    from facexai.explain.analysis import load_subject
    from facexai.runs import bf16_supported

    run = _run(run, dataset)
    err.print(f"analysing {run}" + (f" on {folder}" if folder else ""))
    data = _folder_data(folder, class_map, run, strict)
    subject = load_subject(run, cfg, data=data, data_root=str(data_root) if data_root else None)
    if bf16 and not bf16_supported(subject.run.engine.device):
        err.print(f"[yellow]warning:[/yellow] {subject.run.engine.device} has no hardware bf16: --bf16 will be slow")
    return subject


@app.command()
@domain_errors
def saliency(
    out_dir: OutOpt = None,
    run: RunOpt = None,
    methods: Annotated[str, typer.Option(help="Comma-separated: gradcam, gradcampp, hirescam, ig.")] = (
        "gradcam,gradcampp,hirescam,ig"
    ),
    split: Annotated[Split, typer.Option(help="Which split to explain.")] = Split.test,
    target: TargetOpt = "pred",
    ig_steps: Annotated[int, typer.Option(help="Integrated-gradients steps.")] = 32,
    ig_baseline: Annotated[str, typer.Option(help="black, blur, mean or noise.")] = "black",
    sanity_n: Annotated[
        int | None, typer.Option(help="Faces for the model-randomisation check (0 = skip; default 2%, 2 to 16).")
    ] = None,
    galleries: Annotated[
        bool, typer.Option(help="Per emotion, the most confident and most confused faces with their maps.")
    ] = True,
    dataset: DatasetOpt = None,
    data_root: DataRoot = None,
    folder: FolderOpt = None,
    class_map: ClassMapOpt = None,
    strict_classes: StrictOpt = False,
    limit: LimitOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    batch_size: BatchOpt = None,
    bf16: Bf16Opt = False,
    progress: ProgressOpt = True,
) -> None:
    """Attribution maps over a split, reduced to region relevance per emotion with 95% bootstrap intervals."""
    from facexai.explain.analysis import ExplainConfig, SubjectConfig
    from facexai.provenance import git_commit, now
    from facexai.report.findings import write_saliency

    started, commit = now(), git_commit()
    scfg = SubjectConfig(split=split.value, limit=limit, device=device, threads=threads)
    cfg = ExplainConfig(
        methods=tuple(m.strip() for m in methods.split(",")), target=target, ig_steps=ig_steps,
        ig_baseline=ig_baseline, sanity_n=sanity_n, galleries=galleries, bf16=bf16, progress=progress,
    )  # fmt: skip
    run = _run(run, dataset)
    out_dir = _out(out_dir, run, "findings")
    subject = _subject(run, dataset, data_root, scfg, bf16, folder, class_map, strict_classes)
    paths, sanity = write_saliency(out_dir, subject, _rows(cfg, batch_size, subject), started, commit)
    _warn_flagged(sanity)
    for path in paths:
        out.print(str(path))


def _warn_flagged(sanity: list[dict]) -> None:
    for m in dict.fromkeys(r["method"] for r in sanity if r["flagged"]):
        err.print(f"[yellow]warning:[/yellow] {m} maps barely change when the model is randomised (flagged)")


@app.command()
@domain_errors
def occlude(
    out_dir: OutOpt = None,
    region: Annotated[
        str,
        typer.Option(
            help="A face region (forehead, brows, glabella, eyes, nose, cheeks, mouth, "
            "chin), comma-separated ones, or all."
        ),
    ] = "all",
    fill: Annotated[
        str,
        typer.Option(
            help="Comma-separated: blur (Gaussian blur of the same face), mean (data-set mean), noise, black."
        ),
    ] = "blur",
    run: RunOpt = None,
    split: Annotated[Split, typer.Option(help="Which split to occlude.")] = Split.test,
    target: TargetOpt = "pred",
    dataset: DatasetOpt = None,
    data_root: DataRoot = None,
    folder: FolderOpt = None,
    class_map: ClassMapOpt = None,
    strict_classes: StrictOpt = False,
    limit: LimitOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    batch_size: BatchOpt = None,
    bf16: Bf16Opt = False,
    progress: ProgressOpt = True,
) -> None:
    """Replace face regions and measure the drop in class probability and accuracy per emotion, with 95% CIs."""
    from facexai.explain.analysis import ExplainConfig, SubjectConfig
    from facexai.facs import parse_regions
    from facexai.provenance import git_commit, now
    from facexai.report.findings import write_occlusion

    started, commit = now(), git_commit()
    cfg = ExplainConfig(
        target=target, regions=parse_regions(region), fills=tuple(f.strip() for f in fill.split(",")), bf16=bf16,
        progress=progress,
    )  # fmt: skip
    scfg = SubjectConfig(split=split.value, limit=limit, device=device, threads=threads)
    run = _run(run, dataset)
    out_dir = _out(out_dir, run, "findings")
    subject = _subject(run, dataset, data_root, scfg, bf16, folder, class_map, strict_classes)
    for path in write_occlusion(out_dir, subject, _rows(cfg, batch_size, subject), started, commit):
        out.print(str(path))


@app.command()
@domain_errors
def truth(
    out_dir: OutOpt = None,
    run: RunOpt = None,
    split: Annotated[Split, typer.Option(help="Which split to intervene on.")] = Split.test,
    dataset: DatasetOpt = None,
    limit: LimitOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """True region effects on synthetic faces, by intervention: each face re-rendered with one region neutral."""
    from facexai.explain.analysis import SubjectConfig
    from facexai.provenance import git_commit, now
    from facexai.report.scorecard import write_truth

    started, commit = now(), git_commit()
    scfg = SubjectConfig(split=split.value, limit=limit, device=device, threads=threads)
    run = _run(run, dataset)
    subject = _subject(run, dataset, None, scfg, False)
    out.print(str(write_truth(_out(out_dir, run, "truth"), subject, started, commit, progress)))


@app.command()
@domain_errors
def scorecard(
    out_dir: OutOpt = None,
    run: RunOpt = None,
    methods: Annotated[
        str, typer.Option(help="Comma-separated methods to score (see `facexai list`).")
    ] = ",".join(SCORECARD_METHODS),
    random_model: Annotated[
        bool, typer.Option("--random-model/--no-random-model", help="Also score each method on a random model.")
    ] = True,
    faithfulness_n: Annotated[int, typer.Option(help="Faces for deletion/insertion and class sensitivity.")] = 500,
    road_n: Annotated[int, typer.Option(help="Faces for ROAD (costly: a sparse solve per face and threshold).")] = 140,
    ig_steps: Annotated[int, typer.Option(help="Integrated-gradients steps (and expected-gradients samples).")] = 32,
    split: Annotated[Split, typer.Option(help="Which split to score on.")] = Split.test,
    dataset: DatasetOpt = None,
    data_root: DataRoot = None,
    folder: FolderOpt = None,
    class_map: ClassMapOpt = None,
    strict_classes: StrictOpt = False,
    limit: LimitOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    bf16: Bf16Opt = False,
    progress: ProgressOpt = True,
) -> None:
    """Score every attribution method against the truth (synthetic faces) and for faithfulness, beside null
    explainers: scorecard.csv, scorecard.md (a verdict per method), scorecard.png."""
    from facexai.explain.analysis import SubjectConfig
    from facexai.explain.scorecard import ScorecardConfig
    from facexai.provenance import git_commit, now
    from facexai.report.scorecard import write_scorecard

    started, commit = now(), git_commit()
    cfg = ScorecardConfig(
        methods=tuple(m.strip() for m in methods.split(",")), random_model=random_model, faithfulness_n=faithfulness_n,
        road_n=road_n, ig_steps=ig_steps, bf16=bf16, progress=progress,
    )  # fmt: skip
    scfg = SubjectConfig(split=split.value, limit=limit, device=device, threads=threads)
    run = _run(run, dataset)
    out_dir = _out(out_dir, run, "scorecard")
    subject = _subject(run, dataset, data_root, scfg, bf16, folder, class_map, strict_classes)
    path = write_scorecard(out_dir, subject, cfg, started, commit)
    _print_verdicts(path.parent / "scorecard.csv")
    out.print(str(path))


def _print_verdicts(table: Path) -> None:
    from facexai.io.files import read_csv
    from facexai.report.scorecard import label, verdicts

    rows = [{**r, **{k: float(r[k]) for k in ("estimate", "blind_lift", "blind_lift_low") if r[k] != ""}}
            for r in read_csv(table)]  # fmt: skip
    t = Table(title="method scorecard: beats the best blind null?")
    for col in ("method", "truth", "faithfulness", "verdict"):
        t.add_column(col)
    word = {True: "yes", False: "no", None: "-"}
    for v in verdicts(rows):
        t.add_row(label(v["method"]), word[v["truth"]], word[v["faithfulness"]], "trusted" if v["trusted"] else "no")
    out.print(t)


@app.command()
@domain_errors
def study(
    out_dir: NewOut,
    run: Annotated[list[Path], typer.Option("--run", help="A finished run folder; repeat once per seed.")],
    label: Annotated[list[str] | None, typer.Option(help="A name per run, in order (default: s0, s1, ...).")] = None,
    others: Annotated[
        str, typer.Option(help="Comma-separated references of the Shapley values on the sample (main: blur).")
    ] = "blur_narrow,blur_wide,mean,inpaint",
    per_emotion: Annotated[int, typer.Option(help="Sample faces per emotion (other references, the null).")] = 50,
    patches: Annotated[int, typer.Option(help="Random patches per face and region (size-matched null).")] = 10,
    group: Annotated[str, typer.Option(help="true or pred: the emotion a face counts for and is explained.")] = "true",
    correct_only: Annotated[bool, typer.Option(help="Keep only the faces the model classifies correctly.")] = False,
    map_method: Annotated[str, typer.Option(help="A map method shown beside ('' for none).")] = "ig_blur",
    split: Annotated[Split, typer.Option(help="Which split to study.")] = Split.test,
    data_root: DataRoot = None,
    limit: LimitOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    bf16: Bf16Opt = False,
    progress: ProgressOpt = True,
) -> None:
    """Region effects that survive: exact region Shapley values under several references, occlusion and a
    size-matched null in every run (seed), with FDR control; robust.csv and report.md mark every claim."""
    from facexai.explain.analysis import SubjectConfig
    from facexai.explain.claims import StudyConfig
    from facexai.report.study import write_study

    if label and len(label) != len(run):
        raise ConfigError(f"--label given {len(label)} times for {len(run)} runs; give one per run or none")
    if group not in ("true", "pred"):
        raise ConfigError(f"--group must be true or pred, got {group!r}")
    cfg = StudyConfig(others=tuple(r.strip() for r in others.split(",") if r.strip()), per_emotion=per_emotion,
                      patches=patches, group=group, correct_only=correct_only, map_method=map_method or None,
                      bf16=bf16, progress=progress)  # fmt: skip
    scfg = SubjectConfig(split=split.value, limit=limit, device=device, threads=threads)
    labels = label or [f"s{i}" for i in range(len(run))]
    path = write_study(out_dir, run, labels, cfg, scfg, str(data_root) if data_root else None)
    out.print(str(path))


@app.command("explain")
@domain_errors
def explain_photos(
    photos: Annotated[list[Path], typer.Argument(help="Photos, or folders of photos (jpg, png, bmp, webp).")],
    out_dir: NewOut,
    run: RunOpt = None,
    threshold: Annotated[float, typer.Option(help="dlib's face detection score a face must reach.")] = 0.5,
    detect: Annotated[
        bool, typer.Option("--detect/--no-detect", help="Find faces (default), or take each photo as one face.")
    ] = True,
    method: Annotated[str, typer.Option(help="Region effects: occlusion or shapley.")] = "occlusion",
    map_method: Annotated[
        str, typer.Option(help="The map drawn over each face (default: one the method scorecard trusts).")
    ] = "ig_blur",
    dataset: DatasetOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Find, align, classify and explain every face in your photos: faces.csv and a PNG per face."""
    import torch

    from facexai.provenance import git_commit, now
    from facexai.report.photos import explain_photos as explain_them
    from facexai.runs import open_run

    started, commit = now(), git_commit()
    if threads:
        torch.set_num_threads(threads)
    run = _run(run, dataset)
    say = lambda m: err.print(m, highlight=False, soft_wrap=True)  # noqa: E731
    table, skipped = explain_them(photos, open_run(run, device), out_dir, started, commit, threshold, detect, method,
                                  map_method, progress, say=say)  # fmt: skip
    out.print(str(table))


@app.command("import-model")
@domain_errors
def import_model(
    file: Annotated[Path, typer.Argument(help="A TorchScript .pt or torch.export .pt2 file (dynamic batch).")],
    out_dir: Annotated[Path, typer.Option("--out", help="New run folder for the model.")],
    input_size: Annotated[int, typer.Option(help="The model's input side, pixels.")],
    channels: Annotated[int, typer.Option(help="The model's input channels (1 grey, 3 RGB).")],
    mean: Annotated[str, typer.Option(help="Per-channel mean of [0, 1] pixels, comma-separated.")],
    std: Annotated[str, typer.Option(help="Per-channel std of [0, 1] pixels, comma-separated.")],
    classes: Annotated[
        str, typer.Option(help="The model's output classes in order: emotion names comma-separated, or 7 or 8.")
    ] = "7",
) -> None:
    """Import a model trained elsewhere as a run folder that the gradient and perturbation methods accept."""
    from facexai.emotions import classes_for, parse_emotion
    from facexai.runs import import_model as import_it

    def numbers(text: str, flag: str) -> tuple[float, ...]:
        try:
            return tuple(float(v) for v in text.split(","))
        except ValueError:
            raise ConfigError(f"{flag} {text!r}: expected comma-separated numbers") from None

    if classes.strip().isdigit():
        names = classes_for(int(classes))
    else:
        names = tuple(parse_emotion(c) for c in classes.split(","))
    path = import_it(file, out_dir, input_size, channels, numbers(mean, "--mean"), numbers(std, "--std"), names)
    out.print(str(path))


@app.command()
@domain_errors
def report(
    folder: Annotated[Path, typer.Argument(help="A folder written by `facexai saliency` and/or `facexai occlude`.")],
    fill: Annotated[str | None, typer.Option(help="Occlusion fill for the headlines (default: blur).")] = None,
    html: Annotated[bool, typer.Option(help="Also report.html: one self-contained page, figures embedded.")] = False,
) -> None:
    """Tie an analysis folder's tables and figures together in report.md, with a headline per emotion."""
    from facexai.report.report import write_report

    path = write_report(folder, fill, html)
    out.print(str(path))
    if html:
        out.print(str(path.with_name("report.html")))
    _print_recovery(folder)


@app.command()
@domain_errors
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Finished run folders.")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the tables (runs, seeds, confusions) and histories.png.")
    ],
    label: Annotated[
        list[str] | None, typer.Option(help="A name per run, in the order given (default: the folder names).")
    ] = None,
    title: Annotated[str, typer.Option(help="Figure title.")] = "",
) -> None:
    """Runs side by side: one row per run, mean +- std over runs that differ only in seed, and their curves."""
    from facexai.report.runs import write_comparison

    rows, summary = write_comparison(runs, out_dir, label, title)
    t = Table(title=f"{len(rows)} runs")
    for c in ("label", "seed", "test acc", "val acc", "epoch kept / run", "last-epoch test acc"):
        t.add_column(c, justify="left" if c == "label" else "right")
    for r in rows:
        last = r["last_epoch_test_accuracy"]
        t.add_row(
            r["label"],
            str(r["seed"]),
            f"{r['test_accuracy']:.4f}",
            f"{r['val_accuracy']:.4f}",
            f"{r['epoch']} / {r['epochs_run']}",
            f"{last:.4f}" if last != "" else "-",
        )
    out.print(t)
    for g in summary:
        if g["n"] > 1:
            out.print(f"{g['runs']}: test {g['test_accuracy_mean']:.4f} +- {g['test_accuracy_std']:.4f} (n {g['n']})")
    out.print(str(out_dir))


def _print_recovery(folder: Path) -> None:
    from facexai.report.report import label, recovery_summary

    summary = recovery_summary(folder)
    if not summary:
        return
    t = Table(title="known evidence recovered (synthetic faces; AUC 0.5 = chance)")
    for col in ("method", "top is evidence", "chance", "mean AUC"):
        t.add_column(col)
    for r in summary:
        t.add_row(label(r["method"]), f"{r['recovered']}/{r['of']}", f"{r['chance']:.1f}", f"{r['mean_auc']:.2f}")
    out.print(t)


@regions_app.command("show")
@domain_errors
def regions_show(
    dataset: Annotated[Dataset, typer.Argument(help="Data set whose faces to draw.")],
    data_root: DataRoot = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="PNG to write (default: regions-DATASET.png).")] = None,
    n: Annotated[int, typer.Option(help="How many faces (the first of the split).")] = 16,
    split: Annotated[Split, typer.Option(help="Which split to draw from.")] = Split.test,
    landmarks: Annotated[str, typer.Option(help="auto, dataset, dlib or template.")] = "auto",
    margin: Annotated[float, typer.Option(help="Region margin, in inter-ocular distances.")] = 0.1,
) -> None:
    """Draw the face-region masks over a few faces, to check them by eye."""
    from facexai.config import DataConfig
    from facexai.data import load_dataset
    from facexai.faces.regions import show_regions

    ds = load_dataset(DataConfig(dataset=dataset.value, root=str(data_root) if data_root else None))
    png = out_path or Path(f"regions-{dataset.value}.png")
    path, provider, counts = show_regions(ds, png, n, split.value, landmarks, margin)
    used = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    out.print(f"landmarks: {provider} ({used})")
    if provider == "template":
        err.print("[yellow]note:[/yellow] no detector: every face uses the template (mean) landmarks")
    out.print(str(path))


@app.command()
@domain_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder that receives the run folder.")] = Path("runs"),
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: the synthetic recipe's).")] = None,
    limit: Annotated[int, typer.Option(help="Test images the analysis explains (0 = train and evaluate only).")] = 105,
    bf16: Annotated[
        bool | None,
        typer.Option("--bf16/--no-bf16", help="bf16 autocast in training (default: where the hardware has it); "
                     "--no-bf16 times the demo as a CPU without hardware bf16 runs it."),  # fmt: skip
    ] = None,
    progress: ProgressOpt = True,
) -> None:
    """The built-in main job: train the seed network on synthetic FACS faces, evaluate it, then explain it
    (saliency, occlusion, report), check the findings against the evidence the faces were drawn with, and
    score the methods against the truth by intervention (scorecard)."""
    import time

    from facexai.config import override, recipe
    from facexai.report.demo import analyse
    from facexai.training import fit

    t0 = time.perf_counter()
    run = fit(override(recipe("synthetic"), epochs=epochs, bf16=bf16), out=out_dir, progress=progress, console=err)
    out.print(_metrics_table(run.metrics, f"synthetic faces: test accuracy {run.metrics['accuracy']:.4f}"))
    out.print(f"run: {run.path}")
    trained = time.perf_counter() - t0
    if limit <= 0:
        out.print(f"total time: {trained / 60:.1f} min (training and evaluation)")
        return
    err.print(f"explaining the first {limit} test faces: saliency, sanity check, occlusion, scorecard")
    report, sanity, card = analyse(run.path, limit, progress)
    _warn_flagged(sanity)
    out.print(f"report: {report}")
    _print_recovery(report.parent)
    _print_verdicts(card.parent / "scorecard.csv")
    out.print(f"scorecard: {card}")
    total = time.perf_counter() - t0
    out.print(f"total time: {total / 60:.1f} min ({trained / 60:.1f} training and evaluation, "
              f"{(total - trained) / 60:.1f} analysis and scorecard)")  # fmt: skip


def main() -> None:
    import os

    if int(os.environ.get("RANK", 0)) > 0:  # under torchrun, rank 0 speaks for every process
        out.quiet = err.quiet = True
    app()


if __name__ == "__main__":
    main()
