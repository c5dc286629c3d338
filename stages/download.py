"""DVC stage ``download``: read the configured source (CIFAR-10, an image folder, scikit-learn's digits) into the
canonical uint8 image sets: the real training set, and the validation and test splits that never get dreams."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.stage import Stage

SPLITS = {"train": paths.train_set("baseline"), "val": paths.prepared("val"), "test": paths.prepared("test")}


def run(p) -> None:
    from dreaming_data.data import prepare_data

    m = prepare_data(p.data, SPLITS, paths.METRICS / "data.json")
    print(f"prepared {m['source']}: {len(m['classes'])} classes, image {m['image_shape']}, "
          f"train {m['totals']['train']}, val {m['totals']['val']}, test {m['totals']['test']}")


STAGE = Stage("download", run,
              outputs=lambda p: list(SPLITS.values()),
              small=lambda p: [paths.METRICS / "data.json"],
              priority=lambda p: (0,))

if __name__ == "__main__":
    STAGE.main()
