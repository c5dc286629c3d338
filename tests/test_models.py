"""The UNet's size, DDPM training (the loss falls; an interruption resumes exactly), the classifiers."""

import numpy as np
import pytest
import torch

from dreaming_data.config import parse_params
from dreaming_data.ddpm import train_ddpm
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


def test_ddpm_loss_falls_on_digits(tmp_path):
    p = parse_params(tiny_params(**{"ddpm.epochs": 40}))
    _, r = train_ddpm(p, "cosine", digits_train(), tmp_path / "ckpt.pt")
    assert len(r.epoch_losses) == 40
    assert np.mean(r.epoch_losses[-5:]) < 0.6 * np.mean(r.epoch_losses[:3])


def test_ddpm_resume_after_interruption_is_exact(tmp_path, capsys):
    p = parse_params(tiny_params(**{"ddpm.epochs": 4}))
    train = digits_train()
    ema_a, _ = train_ddpm(p, "linear", train, tmp_path / "a.pt")

    def interrupt(step):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ddpm(p, "linear", train, tmp_path / "b.pt", on_step=interrupt)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["step"] == 5
    ema_b, r = train_ddpm(p, "linear", train, tmp_path / "b.pt")
    assert r.resumed_from == 5 and "resuming linear" in capsys.readouterr().out
    for (k, a), b in zip(ema_a.state_dict().items(), ema_b.state_dict().values()):
        assert torch.equal(a, b), k
    ca, cb = (torch.load(tmp_path / f, weights_only=False) for f in ("a.pt", "b.pt"))
    for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    # another configuration does not resume from that checkpoint
    p2 = parse_params(tiny_params(**{"ddpm.epochs": 4, "ddpm.lr": 5e-4}))
    _, r2 = train_ddpm(p2, "linear", train, tmp_path / "b.pt")
    assert r2.resumed_from == 0 and "starting fresh" in capsys.readouterr().out


def test_classifier_resume_after_interruption_is_exact(tmp_path, capsys):
    from dreaming_data.classifier import train_classifier

    p = parse_params(tiny_params(**{"classifier.arch": "simple_cnn", "classifier.batch_size": 16}))
    train, val = digits_train(per_class=8), digits_train(per_class=3)
    a = train_classifier(p.classifier, p.runtime, train, val, seed=0, epochs=3, checkpoint_path=tmp_path / "a.pt")

    def interrupt(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(p.classifier, p.runtime, train, val, 0, 3, tmp_path / "b.pt", on_epoch=interrupt)
    b = train_classifier(p.classifier, p.runtime, train, val, seed=0, epochs=3, checkpoint_path=tmp_path / "b.pt")
    assert "resuming after epoch 2/3" in capsys.readouterr().out
    assert a.history == b.history
    for (k, wa), wb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(wa, wb), k
    c = train_classifier(p.classifier, p.runtime, train, val, seed=1, epochs=3, checkpoint_path=tmp_path / "b.pt")
    assert "starting fresh" in capsys.readouterr().out and len(c.history) == 3
