"""The shipped colour FFDNet ONNX model, its numpy reference and the .pth reader."""

from __future__ import annotations

import collections
import importlib.util
import io
import os
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from safelight.models import FFDNET_COLOR_INPUTS, ffdnet_color_path
from safelight.models.ffdnet_reference import ffdnet_reference

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests/data/ffdnet_reference_case.npz"
ALLOWED_OPS = {"SpaceToDepth", "Concat", "Conv", "Relu", "DepthToSpace"}


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


torch_pickle = _load_tool("torch_pickle")


@pytest.fixture(scope="module")
def model():
    onnx = pytest.importorskip("onnx")
    return onnx.load(ffdnet_color_path())


@pytest.fixture(scope="module")
def onnx_weights(model):
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.fixture(scope="module")
def session():
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(ffdnet_color_path()), providers=["CPUExecutionProvider"])


def _denoise(session, image: np.ndarray, sigma: float) -> np.ndarray:
    n, _, h, w = image.shape
    noise = np.full((n, 1, h // 2, w // 2), sigma, np.float32)
    return session.run(["denoised"], {"image": image.astype(np.float32), "noise_map": noise})[0]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def _astronaut(size: int) -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    rgb = skimage_data.astronaut()[40 : 40 + size, 150 : 150 + size]  # face and helmet
    return (rgb.transpose(2, 0, 1)[None] / 255.0).astype(np.float32)


def test_shipped_onnx_matches_fixture_from_original_weights(session):
    case = np.load(FIXTURE)
    out = _denoise(session, case["image"], float(case["sigma"]))
    assert np.abs(out - case["denoised"]).max() < 1e-4


def test_graph_structure(model, onnx_weights):
    ops = [node.op_type for node in model.graph.node]
    assert set(ops) <= ALLOWED_OPS
    assert ops.count("Conv") == 12 and ops.count("Relu") == 11
    assert [i.name for i in model.graph.input] == list(FFDNET_COLOR_INPUTS)
    assert [o.name for o in model.graph.output] == ["denoised"]
    shapes = [onnx_weights[f"conv{k}.weight"].shape for k in range(1, 13)]
    assert shapes[0] == (96, 13, 3, 3)
    assert shapes[1:11] == [(96, 96, 3, 3)] * 10
    assert shapes[11] == (12, 96, 3, 3)
    d2s = next(n for n in model.graph.node if n.op_type == "DepthToSpace")
    assert {a.name: a for a in d2s.attribute}["mode"].s == b"CRD"


def test_reference_from_onnx_weights_matches_onnxruntime(session, onnx_weights):
    rng = np.random.default_rng(1)
    clean = _astronaut(64)
    noisy = (clean + rng.normal(0, 25 / 255, clean.shape)).astype(np.float32)
    ref = ffdnet_reference(onnx_weights, noisy, 25 / 255, onnx_layout=True)
    assert np.abs(_denoise(session, noisy, 25 / 255) - ref).max() < 1e-4


def test_odd_sizes_equal_edge_padding_then_crop(session, onnx_weights):
    image = np.random.default_rng(2).random((1, 3, 15, 17)).astype(np.float32)
    padded = np.pad(image, ((0, 0), (0, 0), (0, 1), (0, 1)), mode="edge")
    out = _denoise(session, padded, 10 / 255)[:, :, :15, :17]
    ref = ffdnet_reference(onnx_weights, image, 10 / 255, onnx_layout=True)
    assert np.abs(out - ref).max() < 1e-4


def test_denoising_improves_psnr(session):
    clean = _astronaut(128)
    noisy = clean + np.random.default_rng(3).normal(0, 25 / 255, clean.shape)
    out = _denoise(session, noisy.astype(np.float32), 25 / 255)
    before, after = _psnr(noisy, clean), _psnr(out, clean)
    assert after > before + 3, (before, after)


# --- tools/torch_pickle.py ---------------------------------------------------


def _fake_pth(tensors: dict, fmt: str, monkeypatch) -> bytes:
    """Write ``tensors`` as a torch .pth (zip or legacy) without torch.

    The pickler needs importable globals with torch's names, so stand-in
    ``torch`` modules live in sys.modules only while pickling.
    """
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    for obj, mod in ((FloatStorage, torch), (_rebuild_tensor_v2, utils)):
        obj.__module__, obj.__qualname__ = mod.__name__, obj.__name__
        setattr(mod, obj.__name__, obj)

    class Storage:
        def __init__(self, key, data):
            self.key, self.data = key, np.ascontiguousarray(data, "<f4").ravel()

    class Tensor:
        def __init__(self, storage, size, stride):
            self.args = (storage, 0, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    storages, state = [], collections.OrderedDict()
    for i, (name, (data, size, stride)) in enumerate(tensors.items()):
        storages.append(Storage(str(i), data))
        state[name] = Tensor(storages[-1], size, stride)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if not isinstance(obj, Storage):
                return None
            pid = ("storage", FloatStorage, obj.key, "cpu", obj.data.size)
            return pid if fmt == "zip" else (*pid, None)

    def dumps(obj) -> bytes:
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(obj)
        return buf.getvalue()

    with monkeypatch.context() as m:
        m.setitem(sys.modules, "torch", torch)
        m.setitem(sys.modules, "torch._utils", utils)
        payload = dumps(state)
    if fmt == "legacy":
        head = b"".join(pickle.dumps(x, protocol=2) for x in (torch_pickle.LEGACY_MAGIC, 1001, {"little_endian": True}))
        keys = pickle.dumps([s.key for s in storages], protocol=2)
        blobs = b"".join(struct.pack("<q", s.data.size) + s.data.tobytes() for s in storages)
        return head + payload + keys + blobs
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/byteorder", "little")
        for s in storages:
            zf.writestr(f"archive/data/{s.key}", s.data.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_torch_pickle_reads_both_formats(fmt, monkeypatch):
    w = np.arange(6, dtype=np.float32)
    tensors = {
        "conv.weight": (w, (2, 3), (3, 1)),
        "conv.weight_t": (w, (3, 2), (1, 3)),  # non-contiguous view
        "conv.bias": (np.array([0.5, -1.5]), (2,), (1,)),
    }
    sd = torch_pickle.load_state_dict(_fake_pth(tensors, fmt, monkeypatch))
    assert list(sd) == ["conv.weight", "conv.weight_t", "conv.bias"]
    np.testing.assert_array_equal(sd["conv.weight"], w.reshape(2, 3))
    np.testing.assert_array_equal(sd["conv.weight_t"], w.reshape(2, 3).T)
    assert sd["conv.bias"].dtype == np.float32
    assert sd["conv.bias"].tolist() == [0.5, -1.5]


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_torch_pickle_refuses_unknown_globals(fmt, tmp_path):
    evil = pickle.dumps(_Evil(tmp_path / "pwned"), protocol=2)
    if fmt == "legacy":
        pth = (
            b"".join(pickle.dumps(x, protocol=2) for x in (torch_pickle.LEGACY_MAGIC, 1001, {"little_endian": True}))
            + evil
        )
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("archive/data.pkl", evil)
        pth = buf.getvalue()
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global.*system"):
        torch_pickle.load_state_dict(pth)
    assert not (tmp_path / "pwned").exists()
