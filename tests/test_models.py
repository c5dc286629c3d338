"""The UNet's size, DDPM training (the loss falls; an interruption resumes exactly), the classifiers."""

import signal

import numpy as np
import pytest
import torch

from dreaming_data.checkpoints import ResumeDir
from dreaming_data.config import parse_params
from dreaming_data.ddpm_training import train_ddpm
from dreaming_data.data import load_digits
from dreaming_data.unet import UNet, count_parameters

from conftest import default_params, tiny_params


def test_default_unet_is_ho_et_al_cifar10_size():
    p = parse_params(default_params())
    model = UNet(p.unet, image_size=32, in_channels=3, num_classes=10)
    # 35.7M in Ho et al. 2020 (Table/Appendix B), plus the (10 + 1) x 512 class embedding
    assert count_parameters(model) - 11 * 512 == pytest.approx(35.7e6, rel=0.002)


@pytest.mark.parametrize("size, channels, mult", [(8, 1, (1, 2)), (24, 3, (1, 2, 2)), (16, 1, (1, 2, 2, 2))])
def test_unet_shapes(size, channels, mult):
    raw = tiny_params()
    raw["unet"]["channel_mult"] = list(mult)
    p = parse_params(raw)
    model = UNet(p.unet, image_size=size, in_channels=channels, num_classes=3)
    x = torch.randn(2, channels, size, size)
    assert model(x, torch.tensor([0, 39]), torch.tensor([0, 3])).shape == x.shape


def digits_train(per_class=10, size=8):
    train, _ = load_digits(size, seed=0)
    idx = np.concatenate([np.flatnonzero(train.y == c)[:per_class] for c in range(10)])
    return train.subset(idx)


def test_ddpm_loss_falls_on_digits():
    p = parse_params(tiny_params(**{"ddpm.epochs": 40}))
    _, r = train_ddpm(p, "cosine", digits_train())
    assert len(r.epoch_losses) == 40
    assert np.mean(r.epoch_losses[-5:]) < 0.6 * np.mean(r.epoch_losses[:3])


def ctrl_c_at(when):
    """A callback that sends this process SIGINT (what Ctrl-C does) once its argument reaches ``when``."""
    def callback(n):
        if n == when:
            signal.raise_signal(signal.SIGINT)
    return callback


def test_ddpm_resume_after_ctrl_c_is_exact(tmp_path, capsys):
    from dreaming_data.ddpm_training import training_identity

    p = parse_params(tiny_params(**{"ddpm.epochs": 4}))
    train = digits_train()
    resume = lambda p: ResumeDir(tmp_path / "b", training_identity(p, "linear", train), "test")  # noqa: E731
    ema_a, _ = train_ddpm(p, "linear", train)
    with pytest.raises(KeyboardInterrupt):
        train_ddpm(p, "linear", train, resume(p), on_step=ctrl_c_at(5))
    state = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    assert state["step"] == 5
    ema_b, r = train_ddpm(p, "linear", train, resume(p))
    resume(p).finish()
    assert r.resumed_from == 5 and "ddpm linear: resuming from" in capsys.readouterr().out
    for (k, a), b in zip(ema_a.state_dict().items(), ema_b.state_dict().values()):
        assert torch.equal(a, b), k
    # another configuration does not resume from that state
    with pytest.raises(KeyboardInterrupt):
        train_ddpm(p, "linear", train, resume(p), on_step=ctrl_c_at(3))
    p2 = parse_params(tiny_params(**{"ddpm.epochs": 4, "ddpm.lr": 5e-4}))
    _, r2 = train_ddpm(p2, "linear", train, resume(p2))
    out = capsys.readouterr().out
    assert r2.resumed_from == 0 and "starting fresh" in out and "ddpm" in out


def test_classifier_resume_after_ctrl_c_is_exact(tmp_path, capsys):
    from dreaming_data.classifier_training import train_classifier, training_identity

    p = parse_params(tiny_params(**{"classifier.simple_cnn.batch_size": 16}))
    recipe = p.classifier.simple_cnn
    train, val = digits_train(per_class=8), digits_train(per_class=3)  # 80 images: 5 steps per epoch
    steps = 13  # two full epochs and a cut one, as baseline_matched ends
    resume = lambda seed: ResumeDir(tmp_path / "b", training_identity("simple_cnn", recipe, train, val, seed, steps), "t")  # noqa: E731
    a = train_classifier("simple_cnn", recipe, p.runtime, train, val, seed=0, steps=steps)
    assert [h["steps"] for h in a.history] == [5, 10, 13]
    with pytest.raises(KeyboardInterrupt):
        train_classifier("simple_cnn", recipe, p.runtime, train, val, 0, steps, resume(0), on_step=ctrl_c_at(7))
    b = train_classifier("simple_cnn", recipe, p.runtime, train, val, seed=0, steps=steps, resume=resume(0))
    out = capsys.readouterr().out  # stopped inside the second epoch: it resumes there, not at an epoch's start
    assert "classifier: resuming from" in out and "at step 7/13" in out
    assert a.history == b.history
    for (k, wa), wb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(wa, wb), k
    c = train_classifier("simple_cnn", recipe, p.runtime, train, val, seed=1, steps=steps, resume=resume(1))
    assert "resuming" not in capsys.readouterr().out and len(c.history) == 3


def test_classifier_does_not_resume_under_another_thread_count(tmp_path, capsys):
    from dreaming_data.classifier_training import train_classifier, training_identity

    def params(threads):
        return parse_params(tiny_params(**{"classifier.simple_cnn.batch_size": 16, "runtime.num_workers": threads}))

    train, val = digits_train(per_class=8), digits_train(per_class=3)
    resume = lambda p: ResumeDir(tmp_path / "c", training_identity("simple_cnn", p.classifier.simple_cnn, train, val,  # noqa: E731
                                                                   0, 15), "t")
    threads = torch.get_num_threads()
    try:
        one, two = params(1), params(2)
        with pytest.raises(KeyboardInterrupt):
            train_classifier("simple_cnn", one.classifier.simple_cnn, one.runtime, train, val, 0, 15, resume(one),
                             on_step=ctrl_c_at(10))
        train_classifier("simple_cnn", two.classifier.simple_cnn, two.runtime, train, val, 0, 15, resume(two))
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "resuming" not in out and "starting fresh" in out and "numerics" in out


def test_steps_matched_arithmetic():
    """baseline_matched gets augmented's optimizer steps: epochs x ceil(N_augmented / batch)."""
    from dreaming_data.config import steps_per_epoch, training_steps

    recipe = parse_params(default_params()).classifier.simple_cnn  # 40 epochs, batch 64
    assert steps_per_epoch(45000, 64) == 704 and steps_per_epoch(64, 64) == 1 and steps_per_epoch(66, 64) == 2
    assert steps_per_epoch(65, 64) == 1 and steps_per_epoch(129, 64) == 2  # a last batch of one joins the one before
    assert training_steps(recipe, 45000) == 40 * 704
    # CIFAR-10 with 5,000 dreams per class: 95,000 images -> 1,485 steps per epoch; the matched baseline runs
    # 59,400 steps over its 45,000 images: 84.4 epochs
    assert training_steps(recipe, 95000) == 59400 and round(59400 / 704, 1) == 84.4
    # the quickstart: 200 real + 1,000 dreams, batch 64 -> 19 steps per epoch x 40 = 760 steps (4 real: 190 epochs)
    assert training_steps(recipe, 1200) == 760 and 760 / steps_per_epoch(200, 64) == 190


def test_resnet18_is_torchvisions_with_the_cifar_stem():
    """The same modules, names and shapes as torchvision's resnet18 with a 3x3 stem and no max-pool (the reference):
    its weights load into ours and give the same outputs; and the same initialisation (He normal, fan_out)."""
    import torch.nn as nn
    from torchvision.models import resnet18

    from dreaming_data.classifier import ResNet18

    ref = resnet18(num_classes=10)
    ref.conv1, ref.maxpool = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.Identity()
    ours = ResNet18(3, 10)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 3, 16, 16)
    assert torch.equal(ours.eval()(x), ref.eval()(x))
    w = ResNet18(3, 10).layer3[0].conv2.weight  # 256 x 256 x 3 x 3: std sqrt(2 / fan_out) = sqrt(2 / 2304)
    assert abs(float(w.std()) - (2 / (256 * 9)) ** 0.5) < 0.002


def test_live_learning_rate_is_the_one_each_epoch_trained_with(tmp_path, monkeypatch):
    """One-cycle: after the last step the schedule points past its end (a negative rate); the log keeps the rate
    of the epoch's last step."""
    from dreaming_data.classifier_training import train_classifier

    monkeypatch.chdir(tmp_path)
    p = parse_params(tiny_params(**{"classifier.resnet18.batch_size": 16, "classifier.resnet18.lr": 0.05,
                                    "runtime.live_every": 1}))
    recipe = p.classifier.resnet18
    assert recipe.lr_schedule == "onecycle"
    train, val = digits_train(per_class=4), digits_train(per_class=2)  # 40 images: 3 steps per epoch
    train_classifier("resnet18", recipe, p.runtime, train, val, seed=0, steps=6, live_stage="t")
    rows = (tmp_path / "dvclive" / "t" / "plots" / "metrics" / "lr.tsv").read_text().splitlines()[1:]
    rates = [float(r.split("\t")[-1]) for r in rows]
    assert len(rates) == 2 and all(0 < r <= 0.05 for r in rates), rates


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_only_where_it_is_native(monkeypatch, native):
    """runtime.precision bf16 autocasts a CPU with native bf16 (AVX512-BF16 or AMX) and runs fp32 on any other
    (oneDNN's emulated bf16 is slower than fp32); the checkpoint's numerics and the layouts follow."""
    from dataclasses import replace

    from dreaming_data import runtime

    monkeypatch.setattr(runtime, "native_bf16_cpu", lambda: native)
    cpu = torch.device("cpu")
    cfg = parse_params(tiny_params()).runtime
    conv = torch.nn.Conv2d(3, 4, 3)
    with runtime.autocast(cpu, cfg):
        out = conv(torch.randn(1, 3, 8, 8))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    assert runtime.numerics(cpu, cfg)["precision"] == ("bf16" if native else "fp32")
    assert runtime.memory_format(cpu, cfg, "unet") == (torch.contiguous_format if native else torch.channels_last)
    assert runtime.memory_format(cpu, cfg, "classifier") == torch.channels_last
    fp32 = replace(cfg, precision="fp32")
    assert runtime.precision(cpu, fp32) == "fp32" and runtime.numerics(cpu, fp32)["precision"] == "fp32"
