"""DVC stage ``sample_noise``: the shared initial noise x_T of every sample grid (``sample.seed``), as a picture."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.stage import Stage

PICTURE = paths.PLOTS / "samples" / "noise.png"


def run(p) -> None:
    from dreaming_data.io import load_images, save_png
    from dreaming_data.pictures import noise_picture

    val = load_images(paths.prepared("val"))  # for the image shape and class names
    save_png(noise_picture(val.x.shape[1:], val.classes, p.sample.columns, p.sample.seed), PICTURE)


STAGE = Stage("sample_noise", run,
              inputs=lambda p: [paths.prepared("val")],
              small=lambda p: [PICTURE],
              priority=lambda p: (5, 0))

if __name__ == "__main__":
    STAGE.main()
