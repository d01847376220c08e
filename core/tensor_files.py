"""Reading (and, for tests, writing) published weight files without torch: safetensors and
PyTorch's `torch.save` checkpoints, both as {name: np.ndarray}.

Formats:
    safetensors   8-byte little-endian header length, a JSON header {name: {dtype, shape,
                  data_offsets}} (plus an optional "__metadata__"), then the raw little-endian
                  tensors. Read with the `safetensors` library when installed, else by hand.
    torch zip     (torch >= 1.6, the default of torch.save) a zip archive whose one top folder
                  (any name, usually "archive" or the file's stem) holds data.pkl, a pickle of
                  the saved object in which every tensor is
                  torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) and every
                  storage a persistent id ("storage", torch.<Type>Storage, key, location, numel)
                  whose bytes are the member <top>/data/<key>.
    torch legacy  (torch < 1.6, or _use_new_zipfile_serialization=False) five concatenated
                  things: three pickles (magic number, protocol version 1001, system info), the
                  pickle of the object (persistent ids ("storage", type, key, location, numel,
                  view)), a pickle of the storage keys, then for each key an int64 element count
                  and the raw bytes.

The pickles are read by a restricted unpickler: only the globals listed in `_ALLOWED_GLOBALS`
(tensor rebuilding, storage types, OrderedDict, argparse.Namespace) resolve; any other global is
refused with its name, so a checkpoint cannot run code (torch.load's weights_only rule).

Example:
    tensors = read_tensor_file("latest_net_G.pth")       # {"fc.weight": array, ...}
    nested = read_torch_checkpoint("550000.pt")          # {"g": {...}, "d": {...}, ...}
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import types
import zipfile

import numpy as np

from core.errors import UserError


class TensorFileError(UserError):
    """A weight file cannot be read; the message names the file and what is wrong."""


# ==============================================================================================
# safetensors
# ==============================================================================================

_SAFETENSORS_DTYPES = {
    "F16": "<f2",
    "F32": "<f4",
    "F64": "<f8",
    "I8": "i1",
    "I16": "<i2",
    "I32": "<i4",
    "I64": "<i8",
    "U8": "u1",
    "BOOL": "?",
}
_SAFETENSORS_NAMES = {np.dtype(v).str: k for k, v in _SAFETENSORS_DTYPES.items()}


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """{name: array} of a .safetensors file, with the library when installed, else by hand.

    BF16 tensors are widened to float32 (NumPy has no bfloat16).
    """
    try:
        from safetensors.numpy import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        return dict(load_file(path))
    with open(path, "rb") as file:
        data = file.read()
    if len(data) < 8:
        raise ValueError("shorter than the 8-byte header length")
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_size])  # {name: {dtype, shape, data_offsets}}
    body = data[8 + header_size :]
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        if end > len(body):
            raise ValueError(f"tensor {name}: data_offsets {spec['data_offsets']} past the end")
        raw = body[start:end]
        if spec["dtype"] == "BF16":
            # bfloat16 is the upper half of a float32.
            bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
            tensors[name] = bits.view(np.float32).reshape(spec["shape"])
            continue
        if spec["dtype"] not in _SAFETENSORS_DTYPES:
            raise ValueError(f"tensor {name}: dtype {spec['dtype']} is not supported here")
        tensors[name] = np.frombuffer(raw, dtype=_SAFETENSORS_DTYPES[spec["dtype"]]).reshape(
            spec["shape"]
        )
    return tensors


def write_safetensors(path: str, tensors: dict[str, np.ndarray], metadata=None) -> None:
    """Writes {name: array} as a .safetensors file (the format above; tests and exports)."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, array in tensors.items():
        array = np.asarray(array)
        little = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
        if little.str not in _SAFETENSORS_NAMES:
            raise ValueError(f"write_safetensors: {name} has unsupported dtype {array.dtype}")
        data = np.ascontiguousarray(array, little).tobytes()
        header[name] = {
            "dtype": _SAFETENSORS_NAMES[little.str],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)  # the spec pads the header to 8-byte alignment
    with open(path, "wb") as file:
        file.write(len(encoded).to_bytes(8, "little") + encoded + b"".join(chunks))


# ==============================================================================================
# torch.save checkpoints (read)
# ==============================================================================================

# torch storage class name -> NumPy dtype. BFloat16 is read as uint16 and widened below.
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _StorageType:
    """Stands for torch.<Name>Storage in a pickle: only its dtype matters."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage's elements as a flat array (already read from the file)."""

    def __init__(self, storage_type, flat):
        self.storage_type = storage_type
        self.flat = flat


def _rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    """torch._utils._rebuild_tensor_v2 -> a NumPy array (a copy, C-contiguous)."""
    if storage.flat is None:  # legacy format: the bytes come after the object
        return _DeferredTensor(storage, storage_offset, size, stride)
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    flat = storage.flat
    if not size:
        array = flat[storage_offset : storage_offset + 1].reshape(())
    else:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
        if 0 in size:
            array = np.zeros(size, flat.dtype)
        elif last >= flat.size:
            raise ValueError(f"a tensor of size {size} runs past its storage ({flat.size})")
        else:
            view = np.lib.stride_tricks.as_strided(
                flat[storage_offset:], size, tuple(s * flat.itemsize for s in stride)
            )
            array = np.array(view, order="C")
    if storage.storage_type.name == "BFloat16Storage":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return np.array(array, order="C")


def _rebuild_parameter(data, requires_grad, backward_hooks, *_unused):
    """torch._utils._rebuild_parameter: a Parameter is its data here."""
    return data


class _Namespace(types.SimpleNamespace):
    """argparse.Namespace (training scripts save their args beside the weights)."""


def _ordered_dict(*args):
    return collections.OrderedDict(*args)


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): _ordered_dict,
    ("argparse", "Namespace"): _Namespace,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, load_storage):
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing the global {module}.{name} (only tensors, storages, dicts, lists, "
                "numbers, strings and argparse.Namespace are read; a checkpoint holding other "
                "objects must be re-saved as a state dict)"
            )
        return _ALLOWED_GLOBALS[(module, name)]

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"storage {key}: unknown storage type {storage_type!r}")
        return self._load_storage(storage_type, key, int(pid[4]))


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"expected one <folder>/data.pkl in the zip, found {pickles}")
        top = pickles[0][: -len("data.pkl")]
        cache = {}

        def load_storage(storage_type, key, numel):
            if key not in cache:
                raw = archive.read(f"{top}data/{key}")
                flat = np.frombuffer(raw, storage_type.dtype)
                if flat.size < numel:
                    raise ValueError(f"storage {key} holds {flat.size} of {numel} elements")
                cache[key] = _Storage(storage_type, flat)
            return cache[key]

        return _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _read_legacy(path):
    with open(path, "rb") as file:
        data = file.read()
    stream = io.BytesIO(data)
    plain = _RestrictedUnpickler(stream, None)
    if plain.load() != _LEGACY_MAGIC:
        raise ValueError("neither a zip checkpoint nor a legacy torch.save file (bad magic)")
    if plain.load() != _LEGACY_PROTOCOL:
        raise ValueError("legacy torch.save file of an unknown protocol version")
    plain.load()  # system info: little-endian and type sizes (all writers were little-endian)
    # Tensors are rebuilt while the object is unpickled, before their bytes come: storages
    # start empty, _rebuild_tensor defers, and the deferred tensors are filled at the end.
    storages = {}

    def load_storage(storage_type, key, numel):
        if key not in storages:
            storages[key] = _Storage(storage_type, None)
        return storages[key]

    obj = _RestrictedUnpickler(stream, load_storage).load()
    keys = _RestrictedUnpickler(stream, None).load()
    for key in keys:
        (numel,) = struct.unpack("<q", stream.read(8))
        storage = storages.get(str(key))
        if storage is None:
            raise ValueError(f"storage {key} is stored but never used")
        raw = stream.read(numel * storage.storage_type.dtype.itemsize)
        storage.flat = np.frombuffer(raw, storage.storage_type.dtype)
    return _resolve_deferred(obj)


class _DeferredTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _resolve_deferred(obj):
    if isinstance(obj, _DeferredTensor):
        if obj.storage.flat is None:
            raise ValueError("a tensor's storage is missing from the file")
        return _rebuild_tensor(obj.storage, obj.offset, obj.size, obj.stride)
    if isinstance(obj, dict):
        return collections.OrderedDict(
            (key, _resolve_deferred(value)) for key, value in obj.items()
        )
    if isinstance(obj, list):
        return [_resolve_deferred(value) for value in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve_deferred(value) for value in obj)
    if isinstance(obj, _Namespace):
        return _Namespace(**{k: _resolve_deferred(v) for k, v in vars(obj).items()})
    return obj


def read_torch_checkpoint(path: str):
    """The object a `torch.save` file holds (zip or legacy format), tensors as NumPy arrays.

    Raises:
        TensorFileError: the file is missing, not a torch checkpoint, or holds objects other
            than tensors / containers / numbers / strings (named).
    """
    if not os.path.isfile(path):
        raise TensorFileError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path)
    except (pickle.UnpicklingError, ValueError, KeyError, EOFError, struct.error) as error:
        raise TensorFileError(f"{path} cannot be read as a torch checkpoint: {error}") from None


def read_tensor_file(path: str) -> dict:
    """{name: array} (or the nested dict a checkpoint holds) of a .safetensors, .npz or
    torch.save (.pth / .pt / .bin / .ckpt) file, chosen by content, not by name."""
    if not os.path.isfile(path):
        raise TensorFileError(f"{path}: no such file")
    try:
        if path.lower().endswith(".safetensors"):
            return read_safetensors(path)
        if path.lower().endswith(".npz"):
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as error:
        raise TensorFileError(f"{path} cannot be read: {error}") from None
    return read_torch_checkpoint(path)


# ==============================================================================================
# torch.save checkpoints (write; tests and fixtures only)
# ==============================================================================================

_STORAGE_NAMES = {np.dtype(v).str: k for k, v in _STORAGE_DTYPES.items() if k != "BFloat16Storage"}


class _PickleEmitter:
    """Writes the protocol-2 pickle torch.save writes, opcode by opcode (torch need not be
    importable, so pickle.Pickler cannot name torch's globals itself)."""

    def __init__(self, storage_id):
        self.out = io.BytesIO()
        self.storage_id = storage_id  # (array) -> persistent-id tuple, records the bytes
        self.out.write(pickle.PROTO + b"\x02")

    def global_(self, module, name):
        self.out.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())

    def value(self, obj):
        w = self.out.write
        if obj is None:
            w(pickle.NONE)
        elif isinstance(obj, bool):
            w(pickle.NEWTRUE if obj else pickle.NEWFALSE)
        elif isinstance(obj, int):
            if -(2**31) <= obj < 2**31:
                w(pickle.BININT + struct.pack("<i", obj))
            else:
                data = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
                w(pickle.LONG1 + bytes([len(data)]) + data)
        elif isinstance(obj, float):
            w(pickle.BINFLOAT + struct.pack(">d", obj))
        elif isinstance(obj, str):
            data = obj.encode()
            w(pickle.BINUNICODE + struct.pack("<I", len(data)) + data)
        elif isinstance(obj, tuple):
            w(pickle.MARK)
            for item in obj:
                self.value(item)
            w(pickle.TUPLE)
        elif isinstance(obj, list):
            w(pickle.EMPTY_LIST + pickle.MARK)
            for item in obj:
                self.value(item)
            w(pickle.APPENDS)
        elif isinstance(obj, dict):
            self.global_("collections", "OrderedDict")
            w(pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.MARK)
            for key, item in obj.items():
                self.value(key)
                self.value(item)
            w(pickle.SETITEMS)
        elif isinstance(obj, np.ndarray):
            self.tensor(obj)
        elif isinstance(obj, np.generic):
            self.value(obj.item())
        else:
            raise TypeError(f"write_torch_checkpoint: cannot write a {type(obj).__name__}")

    def tensor(self, array):
        array = np.array(array, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        little = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
        if little.str not in _STORAGE_NAMES:
            raise TypeError(f"write_torch_checkpoint: unsupported dtype {array.dtype}")
        array = array.astype(little, copy=False)
        strides = tuple(s // array.itemsize for s in array.strides) if array.size else ()
        if not array.size:
            strides = tuple(int(np.prod(array.shape[i + 1 :])) for i in range(array.ndim))
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.out.write(pickle.MARK)
        self.value_persistent(self.storage_id(array, _STORAGE_NAMES[little.str]))
        self.value(0)  # storage offset
        self.value(tuple(int(s) for s in array.shape))
        self.value(strides)
        self.value(False)  # requires_grad
        self.value({})  # backward hooks (an OrderedDict)
        self.out.write(pickle.TUPLE + pickle.REDUCE)

    def value_persistent(self, pid):
        w = self.out.write
        w(pickle.MARK)
        for item in pid:
            if isinstance(item, _StorageRef):
                self.global_("torch", item.name)
            else:
                self.value(item)
        w(pickle.TUPLE + pickle.BINPERSID)

    def finish(self):
        self.out.write(pickle.STOP)
        return self.out.getvalue()


class _StorageRef:
    def __init__(self, name):
        self.name = name


def write_torch_checkpoint(path: str, obj, *, legacy: bool = False, archive_name=None) -> None:
    """Writes `obj` (nested dicts / lists / tuples of NumPy arrays, numbers, strings) as
    `torch.save` would: the zip format by default, the pre-1.6 format with legacy=True. For
    test fixtures: `torch.load(path)` reads the result back as tensors."""
    storages = []  # (key, bytes, numel)

    def storage_id(array, storage_name):
        key = str(len(storages))
        storages.append((key, array.tobytes(), array.size))
        if legacy:
            return ("storage", _StorageRef(storage_name), key, "cpu", array.size, None)
        return ("storage", _StorageRef(storage_name), key, "cpu", array.size)

    emitter = _PickleEmitter(storage_id)
    emitter.value(obj)
    data_pkl = emitter.finish()
    if legacy:
        with open(path, "wb") as file:
            for header in (
                _LEGACY_MAGIC,
                _LEGACY_PROTOCOL,
                {
                    "protocol_version": _LEGACY_PROTOCOL,
                    "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4},
                },
            ):
                file.write(pickle.dumps(header, protocol=2))
            file.write(data_pkl)
            file.write(pickle.dumps([key for key, _, _ in storages], protocol=2))
            for _, raw, numel in storages:
                file.write(struct.pack("<q", numel) + raw)
        return
    top = archive_name or os.path.splitext(os.path.basename(path))[0] or "archive"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{top}/data.pkl", data_pkl)
        archive.writestr(f"{top}/byteorder", "little")
        for key, raw, _ in storages:
            archive.writestr(f"{top}/data/{key}", raw)
        archive.writestr(f"{top}/version", "3\n")


# ==============================================================================================
# Name / shape checks shared by the importers
# ==============================================================================================


def flatten_state_dict(obj, prefix=""):
    """{"a.b.c": array} of nested dicts of arrays (non-array leaves are dropped)."""
    flat = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_state_dict(value, name + "."))
        elif isinstance(value, np.ndarray):
            flat[name] = value
    return flat


def check_names_and_shapes(tensors, expected, where, ignore=()):
    """Raises TensorFileError naming every missing, extra and mis-shaped tensor.

    Args:
        tensors: {name: array} read from the file.
        expected: {name: shape} the importer needs.
        where: how the message names the file (e.g. "--checkpoint=x.pth").
        ignore: names (or name suffixes after a ".") allowed to be extra, e.g.
            "num_batches_tracked".
    """

    def ignored(name):
        return any(name == s or name.endswith("." + s) for s in ignore)

    missing = sorted(set(expected) - set(tensors))
    extra = sorted(n for n in set(tensors) - set(expected) if not ignored(n))
    wrong = sorted(
        f"{n}: {tuple(tensors[n].shape)} in the file, {tuple(expected[n])} expected"
        for n in set(expected) & set(tensors)
        if tuple(tensors[n].shape) != tuple(expected[n])
    )
    if missing or extra or wrong:
        parts = []
        for title, items in (("missing", missing), ("extra", extra), ("wrong shape", wrong)):
            if items:
                shown = ", ".join(items[:12]) + (
                    f" ... ({len(items)} in all)" if len(items) > 12 else ""
                )
                parts.append(f"{title}: {shown}")
        raise TensorFileError(f"{where} does not fit: " + "; ".join(parts))
