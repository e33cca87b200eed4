from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

TINY = [
    'model.name="conv"',
    "model.params={widths=[8,16],batchnorm=true,bottleneck=8}",
    "train.epochs=2",
    "train.batch_size=32",
    "train.lr=3e-3",
    "train.checkpoint_every=1",
    'cluster.reduce=[{name="pca",n_components=4}]',
    'cluster.method={name="kmeans"}',
]
# for best and improved, whose contrastive views are smaller than the images: a model whose code
# is pooled over the image reconstructs views of any even side
TINY_POOLED = [*TINY, "model.params={widths=[8,16],batchnorm=true,pool_latent=true}"]


def two_kinds(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 32, 32, 3) images of two easily separated kinds: blue stripes vs bright red."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    images = rng.integers(0, 40, size=(n, 32, 32, 3))
    images[y == 1, :, :, 0] += 180
    images[y == 0, ::4, :, 2] += 150
    return images.astype(np.uint8), y


@pytest.fixture
def images_file(tmp_path: Path) -> Path:
    images, _ = two_kinds()
    path = tmp_path / "trainX.npy"
    np.save(path, images)
    return path


@pytest.fixture
def tiny_recipe() -> dict:
    from aecluster.recipes import apply_overrides, load_recipe

    return apply_overrides(load_recipe("baseline"), TINY)


def flip_a_weight_bit(path: Path) -> None:
    """Flip one bit inside the largest tensor of a checkpoint (torch's zip format pads its
    entries, so a flip at a random offset may land in padding and change nothing)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    start = info.header_offset
    name_len = int.from_bytes(data[start + 26 : start + 28], "little")
    extra_len = int.from_bytes(data[start + 28 : start + 30], "little")
    data[start + 30 + name_len + extra_len + info.file_size // 2] ^= 0x01
    path.write_bytes(bytes(data))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render_in_chromium(page: Path, tmp_path: Path) -> tuple[str, np.ndarray]:
    """The DOM after load and a 1200x2400 screenshot's pixels of a page in headless Chromium."""
    import matplotlib.image

    profile = f"--user-data-dir={tmp_path / 'profile'}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", profile]  # fmt: skip
    url = page.as_uri()
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout  # fmt: skip
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,2400", url],
                   capture_output=True, timeout=120)  # fmt: skip
    return dom, matplotlib.image.imread(shot)
