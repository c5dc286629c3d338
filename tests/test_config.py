import pytest
from typer.testing import CliRunner

from dreaming_data.cli import app, apply_overrides, dvc_set_args
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
    raw = apply_overrides(default_params(), {"ddpm.lr": 0.5, "classifier.seeds": [3, 4]})
    assert raw["ddpm"]["lr"] == 0.5 and raw["classifier"]["seeds"] == [3, 4]
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
