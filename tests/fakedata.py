"""Small on-disk datasets that tests write under tmp_path: fake CelebA trees (both layouts), image folders, CIFAR-10."""
from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
    "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male "
    "Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks "
    "Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace "
    "Wearing_Necktie Young"
).split()
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BOX_TOP, BOX_LEFT, BOX = 55, 35, 108  # the DCGAN crop of a 178x218 CelebA image


def rgb(width: int, height: int, colour=(200, 30, 60)) -> Image.Image:
    return Image.new("RGB", (width, height), colour)


def celeba_colour(k: int) -> tuple[int, int, int]:
    return (250, 40 * k % 256, 255 - 40 * k % 256)


def celeba_image(k: int) -> Image.Image:
    """178x218, black except the 108x108 crop region, which has a colour that identifies image k."""
    array = np.zeros((218, 178, 3), np.uint8)
    array[BOX_TOP : BOX_TOP + BOX, BOX_LEFT : BOX_LEFT + BOX] = celeba_colour(k)
    return Image.fromarray(array)


def attribute_rows(names: list[str]) -> dict[str, list[int]]:
    return {name: [1 if (i + j) % 3 == 0 else -1 for j in range(len(CELEBA_ATTRIBUTES))] for i, name in enumerate(names)}


def write_celeba(
    root: Path, layout: str, image_names: list[str], rows: dict[str, list[int]], partition: dict[str, int] | None = None
) -> None:
    image_dir = root / "img_align_celeba" / "img_align_celeba" if layout == "kaggle" else root / "img_align_celeba"
    image_dir.mkdir(parents=True)
    for name in image_names:
        # 4:4:4 chroma: with 4:2:0 subsampling the colour of the box's last row would bleed into black
        celeba_image(int(name[:6])).save(image_dir / name, quality=95, subsampling=0)
    if layout == "official":
        lines = [str(len(rows)), " ".join(CELEBA_ATTRIBUTES)]
        lines += [f"{name} " + " ".join(f"{v:>2}" for v in values) for name, values in rows.items()]
        (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
        if partition is not None:
            (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in partition.items()))
    else:
        with open(root / "list_attr_celeba.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["image_id", *CELEBA_ATTRIBUTES])
            writer.writerows([name, *values] for name, values in rows.items())
        if partition is not None:
            with open(root / "list_eval_partition.csv", "w", newline="") as file:
                csv.writer(file).writerows([["image_id", "partition"], *partition.items()])


def make_celeba(root: Path, layout: str = "official", n: int = 16) -> Path:
    names = [f"{k:06d}.jpg" for k in range(1, n + 1)]
    write_celeba(root, layout, names, attribute_rows(names))
    return root


def make_image_folder(root: Path, n_per_class: int = 8) -> Path:
    """Two class subfolders of small RGB images of varied sizes."""
    rng = np.random.default_rng(0)
    for cls in ("class_a", "class_b"):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            w, h = int(rng.integers(30, 90)), int(rng.integers(30, 90))
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def write_cifar(folder: Path, per_batch: int = 2) -> np.ndarray:
    """The python-version layout: pickled dicts with rows of 3072 bytes (1024 R, 1024 G, 1024 B).

    The real batches were pickled by Python 2, so they unpickle (encoding="latin1") with str keys.
    """
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows = []
    for batch, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [(batch + i) % 10 for i in range(per_batch)]
        with open(folder / name, "wb") as file:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, file, protocol=2)
        rows.append(data)
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_vis": 3072}, file, protocol=2)
    return np.concatenate(rows).reshape(-1, 3, 32, 32)


def make_cifar10(root: Path, n: int = 16) -> Path:
    write_cifar(root / "cifar-10-batches-py", per_batch=max(1, n // 5))
    return root
