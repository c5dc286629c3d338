import re

import pytest
from typer.testing import CliRunner

from dreaming_data.cli import app
from dreaming_data.overrides import apply_overrides, dvc_set_args
from dreaming_data.config import load_params, parse_params
from dreaming_data.errors import UserError

from conftest import ROOT, default_params, write_params


def test_repository_params_parse():
    p = load_params(ROOT / "params.yaml")
    assert p.data.source == "cifar10"
    assert p.unet.channel_mult == (1, 2, 2, 2)
    assert p.diffusion.timesteps == 500 and p.diffusion.beta_end == 0.028
    with pytest.raises(Exception):
        p.ddpm.lr = 1.0  # frozen


def test_unknown_key_names_key_and_file(tmp_path):
    raw = default_params()
    raw["ddpm"]["learning_rate"] = 1e-4
    path = write_params(tmp_path / "p.yaml", raw)
    with pytest.raises(UserError, match=r"p\.yaml: unknown key 'ddpm\.learning_rate'"):
        load_params(path)


def test_missing_and_mistyped_keys():
    raw = default_params()
    del raw["data"]["val_size"]
    with pytest.raises(UserError, match=r"missing key 'data\.val_size'"):
        parse_params(raw)
    raw = default_params()
    raw["ddpm"]["epochs"] = "many"
    with pytest.raises(UserError, match=r"'ddpm\.epochs' must be an integer, got 'many'"):
        parse_params(raw)
    raw = default_params()
    raw["data"]["source"] = "imagenet"
    with pytest.raises(UserError, match=r"'data\.source' must be one of cifar10, folder, digits"):
        parse_params(raw)


def test_range_checks():
    raw = default_params()
    raw["sample"]["steps"] = [500, 1000]
    with pytest.raises(UserError, match=r"'sample\.steps' must be between 1 and diffusion\.timesteps"):
        parse_params(raw)


def test_overrides_and_dvc_arguments():
    raw = apply_overrides(default_params(), {"ddpm.lr": 0.5, "classifier.seeds.resnet18": [3, 4]})
    assert raw["ddpm"]["lr"] == 0.5 and raw["classifier"]["seeds"]["resnet18"] == [3, 4]
    with pytest.raises(UserError, match="ddpm.nope"):
        apply_overrides(default_params(), {"ddpm.nope": 1})
    assert dvc_set_args({"a.b": [1, 2], "c.d": False, "e.f": "digits"}) == [
        "-S", "a.b=[1, 2]", "-S", "c.d=false", "-S", 'e.f="digits"']


def test_cli_check_exit_codes(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["check", "--params", str(ROOT / "params.yaml")])
    assert ok.exit_code == 0, ok.output
    raw = default_params()
    raw["unet"]["dropout"] = 2.0
    bad = runner.invoke(app, ["check", "--params", str(write_params(tmp_path / "p.yaml", raw))])
    assert bad.exit_code == 2
    assert "unet.dropout" in bad.output and "Traceback" not in bad.output


BAD_VALUES = [  # (key, bad value, what the message must say)
    ("runtime.num_workers", -1, "between 0 and 1024"),
    ("runtime.nproc", 0, "between 1 and 1024"),
    ("runtime.nnodes", 0, "between 1 and 4096"),
    ("runtime.nnodes", 2, "must be host:port"),
    ("data.image_size", 4, "between 8 and 512"),
    ("data.val_size", 0, "between 1 and 10000000"),
    ("data.val_size", -5, "between 1 and 10000000"),
    ("data.train_per_class", 0, "between 1 and 10000000, got 0 or null"),
    ("data.seed", -1, "between 0 and 2^32 - 1"),
    ("diffusion.timesteps", 1, "between 2 and 100000"),
    ("diffusion.beta_start", 0.0, "0 < beta_start < beta_end < 1"),
    ("diffusion.beta_end", 1e-5, "0 < beta_start < beta_end < 1"),
    ("diffusion.beta_end", 1.0, "0 < beta_start < beta_end < 1"),
    ("diffusion.cosine_s", -0.008, "(0, 1)"),
    ("diffusion.p_uncond", 0.0, "(0, 1) when diffusion.guidance > 0"),
    ("diffusion.p_uncond", 1.0, "(0, 1) when diffusion.guidance > 0"),
    ("diffusion.guidance", -1.0, "between 0 and 100"),
    ("unet.channels", 0, "between 1 and 4096"),
    ("unet.channel_mult", [1, 0], "between 1 and 64"),
    ("unet.num_res_blocks", 0, "between 1 and 64"),
    ("unet.dropout", 1.0, "[0, 1)"),
    ("ddpm.epochs", 0, "between 1 and 1000000"),
    ("ddpm.epochs", -1, "between 1 and 1000000"),
    ("ddpm.batch_size", -4, "between 1 and 65536"),
    ("ddpm.batch_size", 0, "between 1 and 65536"),
    ("ddpm.lr", -1e-4, "(0, 10]"),
    ("ddpm.grad_clip", 0.0, "> 0"),
    ("ddpm.ema_decay", 1.0, "(0, 1)"),
    ("ddpm.checkpoint_minutes", -1, "> 0"),
    ("ddpm.schedules", ["linear", "linear"], "must not repeat"),
    ("sample.steps", [0], "between 1 and diffusion.timesteps"),
    ("sample.columns", 0, "between 1 and 1000"),
    ("sample.batch_size", 0, "between 1 and 65536"),
    ("generate.per_class", 0, "between 1 and 10000000"),
    ("generate.steps", 501, "between 1 and diffusion.timesteps"),
    ("generate.batch_size", 0, "between 1 and 65536"),
    ("generate.chunk_size", 0, "between 1 and 10000000"),
    ("merge.synthetic_per_class", -1, "between 0 and generate.per_class"),
    ("merge.synthetic_per_class", 5001, "between 0 and generate.per_class"),
    ("classifier.simple_cnn.epochs", 0, "between 1 and 100000"),
    ("classifier.resnet18.batch_size", 0, "between 1 and 65536"),
    ("classifier.resnet18.lr", -0.1, "(0, 10]"),
    ("classifier.resnet18.momentum", 1.0, "[0, 1)"),
    ("classifier.resnet18.warmup_fraction", 0.0, "(0, 1)"),
    ("classifier.simple_cnn.weight_decay", -1e-4, "between 0 and 1"),
    ("classifier.resnet18.label_smoothing", 1.0, "[0, 1)"),
    ("classifier.simple_cnn.dropout", -0.1, "[0, 1)"),
    ("classifier.resnet18.crop_padding", -1, "between 0 and 512"),
    ("classifier.resnet18.crop_padding", 32, "< data.image_size"),
    ("classifier.simple_cnn.lr_schedule", "cosine", "must be one of"),
    ("classifier.seeds.simple_cnn", [0, 0], "must not repeat"),
    ("classifier.seeds.resnet18", [-1], "between 0 and 2^32 - 1"),
    ("classifier.seeds", [0, 1], "must be a mapping"),
    ("classifier.seeds.resnet18", 3, "must be a list"),
    ("classifier.seeds.resnet18", [], "'resnet18' has no seeds"),  # the judge's
    ("classifier.judge_seed", 5, "must be one of classifier.seeds.resnet18 [0, 1, 2]"),
    ("classifier.judge", "vgg16", "must be one of"),
    ("merge.filter", "best", "must be one of"),
    ("merge.keep_fraction", 0.0, "(0, 1]"),
    ("merge.keep_fraction", 1.5, "(0, 1]"),
    ("eval.batch_size", 0, "between 1 and 65536"),
    ("ablation.per_class", 0, "between 1 and 1000000"),
    ("ablation.cas_steps", 0, "between 1 and 10000000"),
    ("ablation.samplers", ["ddim", "ddim"], "must not repeat"),
    ("ablation.samplers", ["euler"], "must be one of"),
    ("diffusion.sampler", "ddpm", "must be one of"),
    ("diffusion.ddim_eta", 1.5, "between 0 and 1"),
    ("eval.fid_reference", "val", "must be one of"),
    ("eval.reference_features", 1, ">= 2"),
    ("eval.reference_features", -5, "between 0 and 10000000"),
    ("eval.seed", 2 ** 32, "2^32"),
    ("ablation.steps", [600], "between 1 and diffusion.timesteps"),
    ("ablation.schedules", ["cosine", "cosine"], "must not repeat"),
    # sizes that would allocate without end or build nothing (a breaking session's finds)
    ("generate.per_class", 10 ** 12, "between 1 and 10000000"),
    ("generate.per_class", 3_000_000, "at most 2,236,962 fit the 64 GiB"),
    ("ablation.per_class", 2_000_000, "between 1 and 1000000"),
    ("sample.columns", 10 ** 9, "between 1 and 1000"),
    ("classifier.simple_cnn.batch_size", 10 ** 7, "between 1 and 65536"),
    ("ddpm.epochs", 10 ** 9, "between 1 and 1000000"),
    ("unet.attention_resolutions", [3], "must be one of the UNet's feature-map sizes [32, 16, 8, 4]"),
    ("diffusion.guidance", 1e300, "between 0 and 100"),
]


@pytest.mark.parametrize("key, value, message", [b for b in BAD_VALUES if b[2] is not None],
                         ids=lambda v: str(v) if not isinstance(v, str) or "." in v else "")
def test_bad_value_is_one_line_naming_key_and_range(key, value, message):
    raw = apply_overrides(default_params(), {key: value})
    with pytest.raises(UserError) as err:
        parse_params(raw)
    text = str(err.value)
    assert "\n" not in text and message in text
    assert key.split(".")[0] in text  # the key (or, for pairs, its partner) is named


@pytest.mark.parametrize("overrides, key", [
    ({"runtime.nproc": 3}, "ddpm.batch_size"),  # 64
    ({"runtime.nproc": 2, "runtime.nnodes": 2, "runtime.rdzv_endpoint": "node1:29500",
      "classifier.resnet18.batch_size": 250}, "classifier.resnet18.batch_size"),
    ({"runtime.nproc": 4, "classifier.simple_cnn.batch_size": 66}, "classifier.simple_cnn.batch_size"),
])
def test_every_global_batch_must_split_over_the_processes(overrides, key):
    with pytest.raises(UserError, match=re.escape(f"'{key}'") + ".*does not split over runtime.nproc x runtime.nnodes"):
        parse_params(apply_overrides(default_params(), overrides))
    # a batch only an architecture that is not trained uses does not count
    parse_params(apply_overrides(default_params(), {"runtime.nproc": 2}))
    parse_params(apply_overrides(default_params(), {"runtime.nproc": 8, "classifier.seeds.resnet18": [],
                                                    "classifier.judge": "simple_cnn", "classifier.resnet18.batch_size": 7}))


def test_enough_bad_values_are_tried():
    assert len([b for b in BAD_VALUES if b[2] is not None]) >= 30


def test_cli_check_rejects_a_bad_value_in_one_line(tmp_path):
    raw = apply_overrides(default_params(), {"generate.chunk_size": 0})
    r = CliRunner().invoke(app, ["check", "--params", str(write_params(tmp_path / "p.yaml", raw))])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        f"error: {tmp_path / 'p.yaml'}: 'generate.chunk_size' must be between 1 and 10000000, got 0"]


@pytest.mark.parametrize("key, value, message", [
    ("ddpm.lr", float("inf"), "must be a finite number"),
    ("diffusion.guidance", float("nan"), "must be a finite number"),
    ("diffusion.cosine_s", 2.0, "(0, 1)"),
    ("classifier.resnet18.lr", 1e300, "(0, 10]"),
    ("generate.seed", 2 ** 64, "between 0 and 2^32 - 1"),
    ("data.seed", 2 ** 32, "between 0 and 2^32 - 1"),
    ("runtime.num_workers", 100000, "between 0 and 1024"),
])
def test_values_that_overflow_later_are_refused(key, value, message):
    with pytest.raises(UserError, match=re.escape(message)):
        parse_params(apply_overrides(default_params(), {key: value}))


def test_params_are_read_as_dvc_reads_them(tmp_path):
    """YAML 1.2 (DVC's ruamel), not PyYAML's 1.1: what dvc.lock records is what the stage uses."""
    text = (ROOT / "params.yaml").read_text()
    path = tmp_path / "p.yaml"
    path.write_text(text.replace("  seed: 0\n\ndiffusion", "  seed: 010\n\ndiffusion").replace("lr: 1.0e-4", "lr: 1e-4"))
    p = load_params(path)
    assert p.data.seed == 10 and p.ddpm.lr == 1e-4


@pytest.mark.parametrize("content, message", [(b"runtime: \xff\xfe\n", "not UTF-8"), (b"a: [[[[" * 1, "not valid YAML")])
def test_unreadable_params_file_is_one_line(tmp_path, content, message):
    (tmp_path / "p.yaml").write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_params(tmp_path / "p.yaml")
    with pytest.raises(UserError, match="is a folder"):
        load_params(tmp_path)


def test_confident_candidates_survive_float_rounding():
    """21 / 0.7 is 30.000000000000004 in floating point: 30 candidates, not 31 (found by a breaking session)."""
    from dreaming_data.config import confident_candidates

    assert confident_candidates(21, 0.7) == 30 and confident_candidates(145, 0.29) == 500
    assert confident_candidates(5, 0.5) == 10 and confident_candidates(5, 0.3) == 17
    parse_params(apply_overrides(default_params(), {"generate.per_class": 30, "merge.filter": "confident",
                                                    "merge.keep_fraction": 0.7, "merge.synthetic_per_class": 21}))


def test_a_data_path_the_source_does_not_read_is_refused():
    """data.path set with data.source digits (the quickstart's) was ignored: digits results for a user's archive."""
    with pytest.raises(UserError, match=r"'data.path' is set \('my.tar.gz'\) but data.source is digits"):
        parse_params(apply_overrides(default_params(), {"data.source": "digits",
                                                        "data.path": "my.tar.gz"}))
    parse_params(apply_overrides(default_params(), {"data.source": "folder", "data.path": "my.tar.gz"}))
