"""The shipped EfficientNet-Lite0 ONNX model, its numpy reference and the embedder."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest

from safelight.models import (
    EFFICIENTNET_LITE0_INPUTS,
    EFFICIENTNET_LITE0_OUTPUTS,
    efficientnet_lite0_path,
)
from safelight.models import efficientnet_reference as ref
from safelight.models.embedding import Embedder, preprocess

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests/data/efficientnet_lite0_reference_case.npz"
ALLOWED_OPS = {"Conv", "Clip", "Add", "GlobalAveragePool", "Flatten", "Gemm"}
CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO, CUP = 967, 968


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model():
    onnx = pytest.importorskip("onnx")
    return onnx.load(efficientnet_lite0_path())


@pytest.fixture(scope="module")
def onnx_weights(model):
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


def _photo(name: str) -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return getattr(skimage_data, name)()


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _top5(embedder, rgb: np.ndarray) -> list[int]:
    logits = embedder.run(preprocess(rgb))[1][0]
    return [int(i) for i in np.argsort(-logits)[:5]]


def _softmax(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max())
    return p / p.sum()


# --- the ONNX graph vs the original network -----------------------------------


def test_shipped_onnx_matches_fixture_from_original_weights(embedder):
    case = np.load(FIXTURE)
    assert case["image"].shape == (1, 3, 224, 224)
    emb, logits = embedder.run(case["image"])
    assert np.abs(logits - case["logits"]).max() < 1e-4
    assert np.abs(emb - case["embedding"]).max() < 1e-4


def _unfolded_state_dict(onnx_weights: dict) -> dict:
    """Original-layout state dict from the folded ONNX initializers: each conv
    gets an identity BatchNorm (var = 1 - eps) that carries the folded bias."""
    sd = {}

    def put(conv: str, bn: str, name: str):
        sd[conv + ".weight"] = onnx_weights[name + ".weight"]
        bias = onnx_weights[name + ".bias"].astype(np.float64)
        sd[bn + ".weight"], sd[bn + ".bias"] = np.ones_like(bias), bias
        sd[bn + ".running_mean"] = np.zeros_like(bias)
        sd[bn + ".running_var"] = np.full_like(bias, 1 - ref.BN_EPS)

    put("_conv_stem", "_bn0", "stem")
    for i, b in enumerate(ref.block_specs()):
        p = f"_blocks.{i}."
        if b["expand"] != 1:
            put(p + "_expand_conv", p + "_bn0", f"block{i}.expand")
        put(p + "_depthwise_conv", p + "_bn1", f"block{i}.depthwise")
        put(p + "_project_conv", p + "_bn2", f"block{i}.project")
    put("_conv_head", "_bn1", "head")
    sd["_fc.weight"], sd["_fc.bias"] = onnx_weights["fc.weight"], onnx_weights["fc.bias"]
    return sd


def test_reference_from_onnx_weights_matches_onnxruntime_on_a_photo(embedder, onnx_weights):
    image = preprocess(_photo("astronaut"))
    emb_ref, logits_ref = ref.efficientnet_lite0_reference(_unfolded_state_dict(onnx_weights), image)
    emb, logits = embedder.run(image)
    assert np.abs(logits - logits_ref).max() < 1e-3
    assert np.abs(emb - emb_ref).max() < 1e-4


def test_converter_folds_batchnorm_like_the_reference():
    """tools/convert_efficientnet_lite0.py on random weights (no wheel needed):
    the folded graph must equal the un-folded float64 reference."""
    tool = _load_tool("convert_efficientnet_lite0")
    rng = np.random.default_rng(7)
    weights = {}
    for key, shape in ref.expected_shapes().items():
        if key.endswith("num_batches_tracked"):
            weights[key] = np.array(0, np.int64)
        elif key.endswith("running_var"):
            weights[key] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif key.endswith(("running_mean", ".bias")):
            weights[key] = rng.normal(0, 0.1, shape).astype(np.float32)
        elif len(shape) == 1:  # BatchNorm gamma
            weights[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            fan_in = int(np.prod(shape[1:]))
            weights[key] = rng.normal(0, fan_in**-0.5, shape).astype(np.float32)
    tool.check_shapes(weights)
    image = rng.uniform(-1, 1, (2, 3, 224, 224)).astype(np.float32)
    emb, logits = tool.run_onnx(tool.build_model(weights).SerializeToString(), image)
    emb_ref, logits_ref = ref.efficientnet_lite0_reference(weights, image)
    scale = np.abs(logits_ref).max()
    assert np.abs(logits - logits_ref).max() < 1e-4 * max(scale, 1)
    assert np.abs(emb - emb_ref).max() < 1e-4 * max(np.abs(emb_ref).max(), 1)


def test_graph_structure(model, onnx_weights):
    ops = [node.op_type for node in model.graph.node]
    assert set(ops) <= ALLOWED_OPS
    specs = ref.block_specs()
    n_expand = sum(b["expand"] != 1 for b in specs)
    assert len(specs) == 16
    assert ops.count("Conv") == 2 + 2 * len(specs) + n_expand  # stem, head, blocks
    assert ops.count("Clip") == 2 + len(specs) + n_expand
    assert ops.count("Add") == sum(b["residual"] for b in specs) == 9
    assert [i.name for i in model.graph.input] == list(EFFICIENTNET_LITE0_INPUTS)
    assert [o.name for o in model.graph.output] == list(EFFICIENTNET_LITE0_OUTPUTS)
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, 224, 224]
    assert model.opset_import[0].version == 17
    # TF "SAME" padding: the extra zero of a stride-2 conv goes bottom/right.
    attrs = {n.name: {a.name: a for a in n.attribute} for n in model.graph.node}
    assert list(attrs["stem"]["pads"].ints) == [0, 0, 1, 1]
    assert list(attrs["block3.depthwise"]["pads"].ints) == [1, 1, 2, 2]
    assert list(attrs["block4.depthwise"]["pads"].ints) == [2, 2, 2, 2]
    assert attrs["block4.depthwise"]["group"].i == 240
    assert onnx_weights["stem.weight"].shape == (32, 3, 3, 3)
    assert onnx_weights["head.weight"].shape == (1280, 320, 1, 1)
    assert onnx_weights["fc.weight"].shape == (1000, 1280)
    assert all(w.dtype == np.float32 for w in onnx_weights.values())
    props = {p.key: p.value for p in model.metadata_props}
    assert props["input_mean"] == "127" and props["input_std"] == "128"
    assert len(props["source_sha256"]) == 64
    assert efficientnet_lite0_path().stat().st_size < 20_000_000


# --- ImageNet sanity on real photos -------------------------------------------


def test_chelsea_is_a_cat(embedder):
    rgb = _photo("chelsea")
    assert CAT_CLASSES & set(_top5(embedder, rgb))
    p = _softmax(embedder.run(preprocess(rgb))[1][0])
    assert p[sorted(CAT_CLASSES)].sum() > 0.5  # about 0.88


def test_coffee_is_a_cup_or_espresso(embedder):
    top5 = _top5(embedder, _photo("coffee"))
    assert {ESPRESSO, CUP} & set(top5)
    assert top5[0] in (ESPRESSO, CUP)  # espresso at about 0.94


# --- embeddings ---------------------------------------------------------------


def test_jpeg_copy_is_a_near_duplicate_unrelated_photos_are_not(embedder):
    names = ["chelsea", "astronaut", "rocket", "coffee"]
    photos = [_photo(n) for n in names]
    emb = embedder.embed(photos)
    jpeg = embedder.embed([_jpeg(p, 50) for p in photos])
    same = np.sum(emb * jpeg, axis=1)
    # Measured: chelsea 0.97, astronaut 0.97, rocket 0.93, coffee 0.90.
    assert (same[:3] > 0.9).all(), same
    assert same[3] > 0.85, same
    cross = emb @ emb.T
    assert cross[0, 2] < 0.4  # chelsea vs rocket: about 0.15
    assert cross[~np.eye(4, dtype=bool)].max() < 0.4
    assert same.min() > cross[~np.eye(4, dtype=bool)].max() + 0.4


def test_embeddings_are_unit_float32_and_batching_does_not_matter(embedder):
    photos = [_photo("chelsea"), _photo("camera"), _photo("coffee")]
    emb = embedder.embed(photos)
    assert emb.shape == (3, 1280) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    one_by_one = Embedder(batch_size=1).embed(photos)
    np.testing.assert_allclose(one_by_one, emb, atol=1e-5)
    np.testing.assert_allclose(embedder.embed(photos[0]), emb[:1], atol=1e-6)
    pre = np.concatenate([preprocess(p) for p in photos])
    np.testing.assert_allclose(Embedder(batch_size=2).embed_preprocessed(pre), emb, atol=1e-5)
    assert embedder.embed([]).shape == (0, 1280)


def test_missing_onnxruntime_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match="pip install onnxruntime"):
        Embedder().embed(np.zeros((8, 8), np.uint8))


# --- preprocessing ------------------------------------------------------------


def test_preprocess_shape_normalisation_and_centre_crop():
    x = preprocess(np.full((300, 451, 3), 255, np.uint8))
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    np.testing.assert_allclose(x, 1.0, atol=1e-5)  # (255 - 127) / 128
    np.testing.assert_allclose(preprocess(np.zeros((50, 40), np.uint8)), -127 / 128, atol=1e-5)
    # A wide image keeps its centre: left third black, right third white.
    wide = np.zeros((224, 672, 3), np.uint8)
    wide[:, 224:448] = 200
    np.testing.assert_allclose(preprocess(wide), (200 - 127) / 128, atol=1e-5)
    # No resize when the shorter side is already 224: an exact crop.
    rgb = np.random.default_rng(0).integers(0, 256, (224, 300, 3), dtype=np.uint8)
    expect = (rgb[:, 38:262].transpose(2, 0, 1)[None] - 127.0) / 128
    np.testing.assert_allclose(preprocess(rgb), expect, atol=1e-5)


def test_preprocess_grey_rgba_and_float_inputs():
    rgb = _photo("chelsea")
    base = preprocess(rgb)
    np.testing.assert_allclose(preprocess(rgb / 255.0), base, atol=1e-5)
    np.testing.assert_allclose(preprocess((rgb / 255.0).astype(np.float32)), base, atol=1e-5)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_allclose(preprocess(rgba), base, atol=1e-6)
    transparent = rgba.copy()
    transparent[..., 3] = 0  # fully transparent: white, whatever the RGB values
    np.testing.assert_allclose(preprocess(transparent), 1.0, atol=1e-5)

    grey = _photo("camera")
    g = preprocess(grey)
    assert g.shape == (1, 3, 224, 224)
    np.testing.assert_array_equal(g[:, 0], g[:, 1])
    np.testing.assert_array_equal(g[:, 0], g[:, 2])
    np.testing.assert_allclose(preprocess(grey[:, :, None]), g, atol=1e-6)
    np.testing.assert_allclose(preprocess(np.repeat(grey[:, :, None], 3, 2)), g, atol=1e-6)
    np.testing.assert_allclose(preprocess(grey / 255.0), g, atol=1e-5)

    from PIL import Image

    np.testing.assert_allclose(preprocess(Image.fromarray(rgb)), base, atol=1e-6)
    # Out-of-range floats are clipped to [0, 1].
    np.testing.assert_allclose(preprocess(np.full((30, 30), 2.0)), 1.0, atol=1e-5)


def test_preprocess_rejects_bad_input():
    with pytest.raises(TypeError):
        preprocess(np.zeros((10, 10, 3), np.int32))
    with pytest.raises(ValueError):
        preprocess(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ValueError):
        preprocess(np.full((10, 10), np.nan))
