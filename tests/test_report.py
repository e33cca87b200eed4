import numpy as np
import pytest
from conftest import CHROMIUM, render_in_chromium, two_kinds

from aecluster.report import build_report
from aecluster.training import train


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    from conftest import TINY

    from aecluster.recipes import apply_overrides, load_recipe

    tmp = tmp_path_factory.mktemp("report")
    data = tmp / "data"
    data.mkdir()
    images, y = two_kinds(120)
    np.save(data / "trainX.npy", images)
    np.save(data / "valX.npy", images[:60])
    np.save(data / "valY.npy", y[:60])
    np.save(data / "visualization.npy", images[np.argsort(y, kind="stable")][:80])
    recipe = apply_overrides(load_recipe("baseline"), [*TINY, 'select.checkpoint="stability"'])
    from aecluster.training import Validation

    ckpt = tmp / "tiny.pth"
    train(images, recipe, ckpt, val=Validation(images[:60], y[:60]), progress=False)
    out = tmp / "out"
    build_report(ckpt, data, out, compare=ckpt)
    return out


def test_report_writes_every_figure_and_a_page(report_dir):
    html = (report_dir / "index.html").read_text()
    for png in ["embedding", "reconstructions", "checkpoints", "visualization", "thumbnails",
                "clusters", "confusion", "mistakes"]:  # fmt: skip
        assert (report_dir / f"{png}.png").stat().st_size > 1000
    assert html.count("data:image/png;base64,") == 8
    assert "Latent and reduced dimensions" in html and html.count("<tr>") >= 5
    assert "the checkpoint the recipe chose without labels (rule: stability)" in html


def test_missing_files_are_skipped_with_a_note(tmp_path, report_dir):
    data = tmp_path / "partial"
    data.mkdir()
    images, _ = two_kinds(40)
    np.save(data / "trainX.npy", images)
    ckpt = next(report_dir.parent.glob("tiny.pth"))
    build_report(ckpt, data, tmp_path / "out")
    html = (tmp_path / "out" / "index.html").read_text()
    assert "skipped: the data folder has no such file" in html
    assert html.count("data:image/png;base64,") == 2  # reconstructions and checkpoints


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_page_renders_with_its_images_in_headless_chromium(report_dir, tmp_path):
    dom, pixels = render_in_chromium(report_dir / "index.html", tmp_path)
    assert 'data-images-loaded="8/8"' in dom
    assert pixels.shape[0] >= 2000 and pixels.std() > 0.05  # not a blank page
