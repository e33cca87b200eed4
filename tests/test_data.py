import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aecluster.data import as_images, load_images, load_labels, to_tensor, to_uint8_images
from aecluster.errors import InputError


def test_uint8_nhwc_passes_through_without_copy():
    x = np.zeros((4, 32, 32, 3), np.uint8)
    assert as_images(x) is x


@pytest.mark.parametrize(
    "array",
    [
        np.full((2, 32, 32), 7, np.uint8),  # grayscale
        np.full((2, 32, 32, 1), 7, np.uint8),
        np.full((2, 3, 32, 32), 7, np.uint8),  # channels first
        np.full((2, 32, 32, 3), 7 / 255, np.float32),  # [0, 1] floats
        np.full((2, 32, 32, 3), 7.0, np.float64),  # [0, 255] floats
        np.full((2, 32, 32, 3), 7, np.int64),
    ],
)
def test_accepted_layouts_convert_to_uint8_nhwc(array):
    out = as_images(array)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    assert (out == 7).all()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((0, 32, 32, 3), np.uint8), "no images"),
        (np.zeros((2, 32, 32, 4), np.uint8), "channel axis"),
        (np.zeros((32, 32), np.uint8), "rank 2"),
        (np.zeros((2, 4, 4, 3), np.uint8), "at least 8x8"),
        (np.full((2, 32, 32, 3), np.nan, np.float32), "NaN"),
        (np.full((2, 32, 32, 3), 300.0), "range"),
        (np.full((2, 32, 32, 3), -1.0), "range"),
        (np.zeros((2, 32, 32, 3), bool), "not an image type"),
    ],
)
def test_bad_arrays_are_refused_with_a_reason(array, message):
    with pytest.raises(InputError, match=message):
        as_images(array, source="x.npy")


def test_load_refuses_pickles_truncation_and_non_npy(tmp_path):
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="refusing to unpickle"):
        load_images(obj)
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((4, 32, 32, 3), np.uint8))
    cut = tmp_path / "cut.npy"
    cut.write_bytes(good.read_bytes()[:500])
    with pytest.raises(InputError, match="truncated"):
        load_images(cut)
    text = tmp_path / "text.npy"
    text.write_text("hello")
    with pytest.raises(InputError, match="not an .npy"):
        load_images(text)
    with pytest.raises(InputError, match="not found"):
        load_images(tmp_path / "missing.npy")
    with pytest.raises(InputError, match="directory"):
        load_images(tmp_path)


def test_labels_must_match_images(tmp_path):
    path = tmp_path / "y.npy"
    np.save(path, np.array([0, 1, 1]))
    assert load_labels(path, 3).tolist() == [0, 1, 1]
    with pytest.raises(InputError, match="3 labels for 4 images"):
        load_labels(path, 4)


def test_tensor_scaling_roundtrips():
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    t = to_tensor(x)
    assert t.shape == (3, 3, 32, 32) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1
    assert (to_uint8_images(t) == x).all()


def test_other_sizes_are_resized_to_32():
    assert to_tensor(np.zeros((2, 64, 48, 3), np.uint8)).shape == (2, 3, 32, 32)


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        dtype=st.sampled_from([np.uint8, np.int16, np.float32, np.float64]),
        shape=st.tuples(
            st.integers(0, 3),
            st.sampled_from([1, 3, 32]),
            st.sampled_from([3, 32]),
            st.sampled_from([1, 3, 4, 32]),
        ),  # fmt: skip
    )
)
def test_any_array_is_either_valid_images_or_a_clear_error(array):
    try:
        out = as_images(array, source="h.npy")
    except InputError as e:
        assert str(e).startswith("h.npy: ")
    else:
        assert out.dtype == np.uint8 and out.ndim == 4 and out.shape[-1] == 3 and len(out) > 0


def test_floats_just_above_one_are_the_unit_scale_not_binarised():
    from aecluster.data import as_images

    x = np.linspace(0, 1.02, 2 * 8 * 8 * 3, dtype=np.float32).reshape(2, 8, 8, 3)
    out = as_images(x)
    assert out.dtype == np.uint8 and out.max() == 255 and len(np.unique(out)) > 100
    assert np.array_equal(as_images(x * 255 / 1.02)[..., 0] > 0, out[..., 0] > 0)


def test_float_conversion_works_in_chunks_and_never_writes_its_input(tmp_path):
    import tracemalloc

    from aecluster.data import load_images

    x = np.random.default_rng(0).random((3000, 32, 32, 3), dtype=np.float32)
    np.save(tmp_path / "f.npy", x)
    before = (tmp_path / "f.npy").read_bytes()
    tracemalloc.start()
    out = load_images(tmp_path / "f.npy")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (3000, 32, 32, 3) and out.dtype == np.uint8
    assert peak < x.nbytes, f"peak {peak / 2**20:.0f} MiB for a {x.nbytes / 2**20:.0f} MiB file"
    assert (tmp_path / "f.npy").read_bytes() == before
