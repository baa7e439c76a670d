import dataclasses
from pathlib import Path

import pytest

from facexai.config import RECIPES, DataConfig, TrainConfig, from_dict, load_config, override, recipe, to_dict
from facexai.errors import ConfigError, DataNotFoundError, MalformedDataError

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_experiment_config_loads(path):
    assert isinstance(load_config(path), TrainConfig)


@pytest.mark.parametrize(
    "dataset,toml", [("ferplus", "ferplus_seed_b"), ("rafdb", "rafdb_seed_b"), ("fer2013", "fer2013_seed_a_baseline")]
)
def test_default_recipes_are_the_experiment_files(dataset, toml):
    assert recipe(dataset) == load_config(EXPERIMENTS / f"{toml}.toml")


def test_seed_recipes_match_the_papers():
    b = load_config(EXPERIMENTS / "ferplus_seed_b.toml")
    assert (b.lr, b.batch_size, b.epochs, b.lr_factor, b.monitor, b.data.label_mode) == (
        0.01,
        64,
        30,
        0.1,
        "val_loss",
        "soft",  # seed B trains on the tagger votes
    )
    assert (b.augment.rotation, b.augment.scale, b.augment.flip) == (10.0, 0.1, True)
    assert load_config(EXPERIMENTS / "rafdb_seed_b.toml").lr == 0.001
    lrs = {p.stem: load_config(p).lr for p in EXPERIMENTS.glob("fer2013_seed_a_*.toml")}
    assert lrs == {
        "fer2013_seed_a_baseline": 0.01,
        "fer2013_seed_a_exp1": 0.001,
        "fer2013_seed_a_exp2": 0.0001,
        "fer2013_seed_a_exp3": 0.0001,
    }
    a = load_config(EXPERIMENTS / "fer2013_seed_a_exp3.toml")
    assert (a.batch_size, a.epochs, a.early_stop_patience, a.lr_patience, a.restore_best) == (128, 50, 7, 5, False)
    assert (a.input_size, a.in_channels, a.data.split) == (48, 1, "seed-a")


def test_the_48_pixel_ferplus_recipe_is_seed_b_with_only_the_input_size_changed():
    b = load_config(EXPERIMENTS / "ferplus_seed_b.toml")
    assert load_config(EXPERIMENTS / "ferplus_seed_b_48.toml") == override(b, input_size=48, in_channels=3)


def test_the_8_class_ferplus_recipes_are_the_48_pixel_recipe_with_only_classes_and_labels_changed():
    b = load_config(EXPERIMENTS / "ferplus_seed_b_48.toml")
    for mode in ("majority", "soft"):
        want = override(b, **{"data.classes": 8, "data.label_mode": mode})
        assert load_config(EXPERIMENTS / f"ferplus_barsoum8_{mode}_48.toml") == want


def test_overrides_reach_nested_tables_and_ignore_missing_values():
    cfg = override(recipe("ferplus"), epochs=2, lr=None, **{"data.root": "/x", "data.classes": 8})
    assert (cfg.epochs, cfg.lr, cfg.data.root, cfg.data.classes) == (2, 0.01, "/x", 8)
    assert from_dict(to_dict(cfg)) == cfg


def test_bad_config_files_name_the_problem(tmp_path):
    with pytest.raises(DataNotFoundError, match="config file not found"):
        load_config(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("epochs = [")
    with pytest.raises(MalformedDataError, match="bad.toml: not valid TOML"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "typo.toml").write_text("epoch = 3\n[data]\nroot_dir = 'x'\n")
    with pytest.raises(ConfigError, match="unknown setting.*epoch"):
        load_config(tmp_path / "typo.toml")
    with pytest.raises(ConfigError, match="unknown data set"):
        recipe("affectnet")


def test_a_config_written_with_the_retired_soft_labels_switch_still_loads():
    old = {**to_dict(TrainConfig()), "soft_labels": True}  # what run folders before it was retired hold
    assert from_dict(old) == TrainConfig()
    with pytest.raises(ConfigError, match="label_mode"):
        from_dict({**old, "soft_labels": False})


def test_a_data_setting_is_refused_where_the_data_set_does_not_read_it():
    from facexai.config import DATASETS, check_reads

    check_reads("ferplus", label_mode="majority", classes=8, split=None)
    with pytest.raises(ConfigError, match="--split applies to fer2013 only; ferplus"):
        check_reads("ferplus", **{"--split": "seed-a"})
    with pytest.raises(ConfigError, match="unknown data set 'affectnet'"):
        check_reads("affectnet")
    assert set(DATASETS) == set(RECIPES)  # every data set has its reference recipe


def test_the_image_folder_recipe_is_the_fast_fer_plus_recipe_on_carved_splits():
    folder, fast = recipe("imagefolder"), load_config(EXPERIMENTS / "ferplus_fast.toml")
    assert dataclasses.replace(folder, data=fast.data) == fast
    assert folder.data.dataset == "imagefolder" and folder.data.carve


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DataConfig(classes="8"), "classes must be int, got '8' (str)"),
        (lambda: DataConfig(classes=9), "classes must be 7 or 8, got 9"),
        (lambda: TrainConfig(epochs=0), "epochs must be at least 1, got 0"),
        (lambda: TrainConfig(batch_size=True), "batch_size must be int, got True (bool)"),
        (lambda: TrainConfig(lr="0.1"), "lr must be float, got '0.1' (str)"),
        (lambda: TrainConfig(bf16="yes"), "bf16 must be bool or None, got 'yes' (str)"),
    ],
)
def test_a_setting_of_the_wrong_type_or_range_is_one_line_naming_it(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert str(info.value) == message


def test_an_int_is_accepted_where_a_float_is_declared():
    assert TrainConfig(lr=1).lr == 1
