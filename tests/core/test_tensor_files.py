"""core/tensor_files.py: torch.save checkpoints (zip and legacy) and safetensors read without
torch, the writers used for fixtures, the restricted unpickler and the name / shape check."""

import pickle
import struct
import zipfile

import numpy as np
import pytest

from core import tensor_files


def _nested(rng):
    return {
        "g": {
            "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "steps": np.arange(5, dtype=np.int64),
            "half": np.float16([1.5, -2.0]),
            "flag": np.array([True, False]),
            "scalar": np.array(3.25, np.float32),
        },
        "args": {"size": 256, "lr": 0.002, "name": "ffhq", "big": 2**40, "none": None},
        "list": [1, (2, 3.5)],
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_checkpoint_round_trip(tmp_path, legacy):
    obj = _nested(np.random.default_rng(0))
    path = str(tmp_path / "ckpt.pt")
    tensor_files.write_torch_checkpoint(path, obj, legacy=legacy)
    assert zipfile.is_zipfile(path) is not legacy
    back = tensor_files.read_torch_checkpoint(path)
    for key, value in obj["g"].items():
        assert back["g"][key].dtype == value.dtype and back["g"][key].shape == value.shape
        np.testing.assert_array_equal(back["g"][key], value)
    assert back["args"] == obj["args"]
    assert back["list"] == [1, (2, 3.5)]
    # read_tensor_file picks the format by content, whatever the extension.
    assert set(tensor_files.read_tensor_file(path)) == {"g", "args", "list"}


def _zip_with_pickle(path, data_pkl, storages):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", data_pkl)
        for key, raw in storages.items():
            archive.writestr(f"model/data/{key}", raw)


def test_strided_views_and_offsets_of_a_shared_storage(tmp_path):
    # torch saves a view (a slice, a transpose) as its storage + offset + size + stride, and
    # two tensors may share one storage: emit such a data.pkl opcode by opcode.
    base = np.arange(12, dtype=np.float32)
    emitter = tensor_files._PickleEmitter(None)
    out = emitter.out
    emitter.global_("collections", "OrderedDict")
    out.write(pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.MARK)
    for name, offset, size, stride in (("a", 0, (3, 4), (4, 1)), ("b", 1, (2, 3), (1, 4))):
        emitter.value(name)
        emitter.global_("torch._utils", "_rebuild_tensor_v2")
        out.write(pickle.MARK)
        emitter.value_persistent(
            ("storage", tensor_files._StorageRef("FloatStorage"), "0", "cpu", 12)
        )
        for item in (offset, size, stride, False, {}):
            emitter.value(item)
        out.write(pickle.TUPLE + pickle.REDUCE)
    out.write(pickle.SETITEMS)
    path = str(tmp_path / "views.pth")
    _zip_with_pickle(path, emitter.finish(), {"0": base.tobytes()})
    back = tensor_files.read_torch_checkpoint(path)
    np.testing.assert_array_equal(back["a"], base.reshape(3, 4))
    np.testing.assert_array_equal(back["b"], [[1, 5, 9], [2, 6, 10]])
    assert back["b"].flags["C_CONTIGUOUS"] and back["b"].shape == (2, 3)
    # Past the storage's end is an error, not a read of other memory.
    emitter = tensor_files._PickleEmitter(None)
    emitter.global_("torch._utils", "_rebuild_tensor_v2")
    emitter.out.write(pickle.MARK)
    emitter.value_persistent(("storage", tensor_files._StorageRef("FloatStorage"), "0", "cpu", 12))
    for item in (10, (4,), (1,), False, {}):
        emitter.value(item)
    emitter.out.write(pickle.TUPLE + pickle.REDUCE)
    _zip_with_pickle(path, emitter.finish(), {"0": base.tobytes()})
    with pytest.raises(tensor_files.TensorFileError, match="runs past its storage"):
        tensor_files.read_torch_checkpoint(path)


def test_refuses_other_globals_and_names_them(tmp_path):
    evil = pickle.dumps({"x": print}, protocol=2)  # a global that is not a tensor part
    path = str(tmp_path / "evil.pt")
    _zip_with_pickle(path, evil, {})
    with pytest.raises(
        tensor_files.TensorFileError, match=r"refusing the global (__builtin__|builtins)\.print"
    ):
        tensor_files.read_torch_checkpoint(path)
    with pytest.raises(tensor_files.TensorFileError, match="no such file"):
        tensor_files.read_torch_checkpoint(str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(tensor_files.TensorFileError, match="junk.pt cannot be read"):
        tensor_files.read_torch_checkpoint(str(tmp_path / "junk.pt"))


def test_safetensors_round_trip_and_bf16(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {
        "w": rng.standard_normal((2, 3)).astype(np.float32),
        "i": np.arange(4, dtype=np.int64),
        "h": np.float16([0.5, 1.0]),
    }
    path = str(tmp_path / "m.safetensors")
    tensor_files.write_safetensors(path, tensors, metadata={"format": "pt"})
    back = tensor_files.read_safetensors(path)
    for key, value in tensors.items():
        assert back[key].dtype == value.dtype
        np.testing.assert_array_equal(back[key], value)
    # BF16 (what newer HF files hold) is read as float32: bfloat16 is a float32's upper half.
    values = np.float32([1.0, -2.5, 3.140625])
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = b'{"b":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}'
    (tmp_path / "b.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + raw)
    np.testing.assert_array_equal(
        tensor_files.read_safetensors(str(tmp_path / "b.safetensors"))["b"], values
    )


def test_check_names_and_shapes_lists_missing_extra_and_wrong():
    tensors = {"a": np.zeros((2, 3)), "b": np.zeros(4), "bn.num_batches_tracked": np.zeros(())}
    tensor_files.check_names_and_shapes(
        tensors, {"a": (2, 3), "b": (4,)}, "x.pth", ignore=("num_batches_tracked",)
    )
    with pytest.raises(tensor_files.TensorFileError) as error:
        tensor_files.check_names_and_shapes(tensors, {"a": (3, 2), "c": (1,)}, "x.pth")
    message = str(error.value)
    assert "x.pth does not fit" in message and "missing: c" in message
    assert "extra: b, bn.num_batches_tracked" in message
    assert "a: (2, 3) in the file, (3, 2) expected" in message
    assert tensor_files.flatten_state_dict({"m": {"w": np.ones(1), "n": 3}}).keys() == {"m.w"}


def test_lpips_reads_safetensors_through_core():
    from evaluation import lpips

    assert lpips.read_safetensors is tensor_files.read_safetensors
    assert not hasattr(lpips, "_read_safetensors")


def test_state_dict_metadata_attribute_is_read(tmp_path):
    # torch's state_dict() is an OrderedDict carrying a `_metadata` attribute (pickled as the
    # OrderedDict's instance state): real checkpoints hold it.
    import collections

    state = collections.OrderedDict(step=3, sizes=[2.0])
    state._metadata = collections.OrderedDict({"": {"version": 1}})
    path = str(tmp_path / "pytorch_model.bin")
    _zip_with_pickle(path, pickle.dumps(state, protocol=2), {})
    back = tensor_files.read_torch_checkpoint(path)
    assert dict(back) == {"step": 3, "sizes": [2.0]} and back._metadata[""]["version"] == 1
