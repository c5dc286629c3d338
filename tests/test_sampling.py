"""Per-image noise (Philox against Random123's published answers), outputs independent of batch and chunk sizes,
resumable generation, and the grid's noise."""

import numpy as np
import pytest
import torch

from dreaming_data.checkpoints import ResumeDir
from dreaming_data.config import parse_params
from dreaming_data.diffusion import make_schedule, respaced_timesteps, sampler_coefficients
from dreaming_data.randomness import image_keys, normal_noise, philox4x32

from conftest import tiny_params

# Random123's kat_vectors for philox4x32_10: (counter, key) -> output
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", PHILOX_KAT)
def test_philox_matches_random123(counter, key, expected):
    out = philox4x32(tuple(torch.tensor([c]) for c in counter), tuple(torch.tensor([k]) for k in key))
    assert tuple(int(w) for w in out) == expected


def test_normal_noise_is_standard_normal_and_per_image():
    from scipy import stats

    keys = image_keys(12, torch.arange(4).repeat_interleave(500), torch.arange(500).repeat(4))
    z = normal_noise(keys, 0, (3, 8, 8))
    assert z.shape == (2000, 3, 8, 8) and z.dtype == torch.float32
    flat = z.flatten().double().numpy()
    assert abs(flat.mean()) < 0.01 and abs(flat.std() - 1) < 0.01
    assert stats.kstest(flat[:20000], "norm").pvalue > 1e-3
    # neighbouring values, images and streams are uncorrelated
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01
    assert abs(float((z[:-1] * z[1:]).mean())) < 0.01
    assert abs(float((normal_noise(keys, 1, (3, 8, 8)) * z).mean())) < 0.01
    # a row depends on its key alone: any sub-batch, in any order, gives the same bytes
    idx = torch.tensor([1999, 3, 700, 3])
    assert torch.equal(normal_noise(keys[idx], 0, (3, 8, 8)), z[idx])
    assert torch.equal(normal_noise(keys[5:6], 0, (3, 8, 8)), z[5:6])
    # keys differ across seeds, classes and indices
    assert len({tuple(k.tolist()) for k in keys}) == 2000
    assert not torch.equal(image_keys(13, torch.tensor([0]), torch.tensor([0])), keys[:1])


def tiny_sampler(guidance=1.8, classes=3, sampler=None):
    from dreaming_data.ddpm import LoadedDDPM, build_unet, process_config
    from dreaming_data.sampling import Sampler

    p = parse_params(tiny_params(**{"diffusion.guidance": guidance}))
    torch.manual_seed(0)
    model = build_unet(p.unet, (8, 8, 1), classes).eval()
    names = tuple("abcdefghij"[:classes])
    ddpm = LoadedDDPM(model, make_schedule(p.diffusion, "linear"), process_config(p.diffusion), names, (8, 8, 1))
    return Sampler(ddpm, p.diffusion, p.runtime, torch.device("cpu"), sampler)


@pytest.mark.parametrize("name", ["ancestral", "ddim", "dpmsolver++"])
def test_generation_bytes_do_not_depend_on_batch_or_chunk_size(tmp_path, name):
    from dreaming_data.sampling import generate

    sampler = tiny_sampler(sampler=name)
    runs = []
    for i, (batch, chunk) in enumerate([(2, 2), (7, 5), (15, 1), (4, 3)]):
        images, _ = generate(sampler, per_class=5, steps=3, seed=1, batch_size=batch, chunk_size=chunk,
                             resume=ResumeDir(tmp_path / str(i), {}, "test"))
        runs.append(images)
    for other in runs[1:]:
        assert np.array_equal(other.x, runs[0].x) and np.array_equal(other.y, runs[0].y)
    assert np.bincount(runs[0].y).tolist() == [5, 5, 5] and runs[0].synthetic.all()
    assert len({row.tobytes() for row in runs[0].x}) == 15
    # the first images of a larger run are the same images
    more, _ = generate(sampler, per_class=8, steps=3, seed=1, batch_size=6, chunk_size=8,
                       resume=ResumeDir(tmp_path / "more", {}, "test"))
    assert np.array_equal(more.x[more.y == 1][:5], runs[0].x[runs[0].y == 1])


def test_generation_resumes_without_duplicates(tmp_path, capsys):
    from dreaming_data.sampling import generate

    sampler = tiny_sampler()
    resume = lambda identity: ResumeDir(tmp_path / "a", identity, "test")  # noqa: E731
    full, _ = generate(sampler, 5, 3, seed=1, batch_size=2, chunk_size=2, resume=resume({"id": 1}))
    chunks = sorted((tmp_path / "a").glob("class*.npy"))
    assert len(chunks) == 9
    for f in chunks[4:]:  # a run that stopped after four chunks
        f.unlink()
    resumed, timing = generate(sampler, 5, 3, seed=1, batch_size=3, chunk_size=2, resume=resume({"id": 1}))
    assert "resuming, 4 of 9 chunks already done" in capsys.readouterr().out
    assert timing["images"] == 8  # class 1 images 2-4 and class 2
    assert np.array_equal(resumed.x, full.x) and np.array_equal(resumed.y, full.y)
    # another identity starts over
    generate(sampler, 5, 3, seed=1, batch_size=2, chunk_size=2, resume=resume({"id": 2}))
    assert "starting fresh" in capsys.readouterr().out


def test_grid_does_not_depend_on_batch_size():
    from dreaming_data.sampling import sample_grid

    sampler = tiny_sampler()
    a, _ = sample_grid(sampler, 4, columns=3, seed=12, batch_size=100)
    b, _ = sample_grid(sampler, 4, columns=3, seed=12, batch_size=2)
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_step_noise_is_not_the_initial_noise():
    """The grids once drew the first step's noise from x_T's seed: z equal to x_T, the state over-scaled."""
    from dreaming_data.sampling import initial_noise, sample_grid

    calls = []

    class Zero(torch.nn.Module):  # eps = 0; records what the sampler feeds it
        def forward(self, x, t, y):
            calls.append(x[: len(x) // 2].clone())  # the conditional half of the guided batch
            return torch.zeros_like(x)

    sampler = tiny_sampler(classes=10, sampler="ancestral")
    sampler.fwd = Zero()
    sample_grid(sampler, 2, columns=40, seed=12, batch_size=1000)
    x_T, x_1 = calls[0], calls[1]
    keys = image_keys(12, *[torch.arange(10).repeat_interleave(40), torch.arange(40).repeat(10)])
    assert torch.equal(x_T, initial_noise(keys, (8, 8, 1)))
    c = sampler_coefficients(sampler.ddpm.schedule, respaced_timesteps(sampler.ddpm.schedule.timesteps, 2), "fixed_large")
    k = 1  # the first step, from timestep index c.timesteps[1]
    x0 = (x_T / float(c.alphas_cumprod[k]) ** 0.5).clamp(-1, 1)
    mean = float(c.posterior_mean_coef_x0[k]) * x0 + float(c.posterior_mean_coef_xt[k]) * x_T
    z = (x_1 - mean) / float(c.sigma[k])
    assert abs(float(z.std()) - 1) < 0.05
    assert abs(float((z * x_T).mean())) < 0.05  # independent of x_T (it was 1.0)


def test_guidance_needs_a_model_trained_with_label_dropout():
    from dreaming_data.errors import UserError

    sampler = tiny_sampler()
    sampler.ddpm.process["p_uncond"] = 0.0
    from dreaming_data.sampling import Sampler

    with pytest.raises(UserError, match="diffusion.guidance: 1.8 needs a model trained with label dropout"):
        Sampler(sampler.ddpm, parse_params(tiny_params()).diffusion, sampler.runtime, sampler.device)


@pytest.mark.parametrize("damage", ["empty", "float", "identity-list", "folder-is-a-file"])
def test_damaged_generation_folder_is_resampled(tmp_path, damage, capsys):
    from dreaming_data.sampling import chunk_name, generate

    sampler = tiny_sampler()
    folder = tmp_path / "gen"
    ref, _ = generate(sampler, 4, 3, seed=1, batch_size=4, chunk_size=2, resume=ResumeDir(folder, {}, "t"))
    chunk = folder / chunk_name(0, 0, 2)
    if damage == "empty":
        chunk.write_bytes(b"")
    elif damage == "float":
        np.save(chunk, np.zeros((2, 8, 8, 1), np.float32))
    elif damage == "identity-list":
        (folder / "identity.json").write_text("[]")
    else:
        import shutil

        shutil.rmtree(folder)
        folder.write_text("not a folder")
    again, timing = generate(sampler, 4, 3, seed=1, batch_size=4, chunk_size=2, resume=ResumeDir(folder, {}, "t"))
    assert np.array_equal(again.x, ref.x)
    assert timing["images"] == (2 if damage in ("empty", "float") else 12)


def test_state_of_another_stage_is_not_resumed(tmp_path, capsys):
    a = ResumeDir(tmp_path / "x", {"k": 1}, "train_classifier@baseline-0")
    a.open()
    a.save_state({"step": 3})
    b = ResumeDir(tmp_path / "x", {"k": 1}, "train_ddpm@linear")
    assert b.open() is True  # same identity file (copied by hand), but ...
    assert b.load_state("cpu") is None
    assert "was saved by 'train_classifier@baseline-0'" in capsys.readouterr().out


def test_samplers_draw_different_images_from_the_same_noise():
    from dreaming_data.sampling import sample_grid

    def sampler(name):
        s = tiny_sampler(sampler=name)
        torch.manual_seed(1)
        for weight in s.ddpm.model.parameters():  # an untrained UNet predicts eps = 0: every sampler saturates alike
            weight.data.normal_(0, 0.05)
        return s

    grids = {name: np.asarray(sample_grid(sampler(name), 4, columns=2, seed=12, batch_size=100)[0])
             for name in ("ancestral", "ddim", "dpmsolver++")}
    assert not np.array_equal(grids["ancestral"], grids["ddim"])
    assert not np.array_equal(grids["ddim"], grids["dpmsolver++"])
    from dreaming_data.runtime import native_bf16_cpu

    identity = tiny_sampler(sampler="ddim").identity()
    assert identity.pop("precision") == ("bf16" if native_bf16_cpu() else "fp32")  # the quickstart's runtime: bf16
    assert identity == {"guidance": 1.8, "sampler": "ddim", "ddim_eta": 0.0}
