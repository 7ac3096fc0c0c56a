"""KServe's v2 inference protocol (the Open Inference Protocol) over REST: typed tensors in and out.

A request is `{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "data"}], "outputs"?}`;
with the binary tensor data extension the JSON is followed by raw tensor bytes (the
`Inference-Header-Content-Length` header gives the JSON's length, an input's
`parameters.binary_data_size` its bytes), which is what KServe's Python client sends by default for a
tensor set with `set_data_from_numpy`. A response is `{"model_name", "model_version", "id", "outputs"}`,
with an output's data in JSON, or as raw bytes when the request asks (`parameters.binary_data` on a
requested output, or `binary_data_output` on the request).

`parse_request` checks the request's own structure (the names, shapes and datatypes, the data's count
and type, the binary sizes) and gives numpy arrays (a BYTES tensor: a list of bytes, or of str for
JSON text); what fits the model is the predictor's business (`predictor.tensor_array`). The router of a
sharded service splits a request by rows (`take_rows`) and joins the shards' outputs (`join_rows`).
"""

from __future__ import annotations

import json
import math
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dmlc.runtime.predictor import BadInstances, _cast

HEADER = "inference-header-content-length"
DTYPES: dict[str, str | None] = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BYTES": None,
}
MAX_RANK = 32


class BadRequest(ValueError):
    """A v2 request that does not follow the protocol: HTTP 400 with this message."""


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    value: Any  # np.ndarray, or a list of bytes / str for BYTES
    binary: bool = False  # came (or goes) as raw bytes after the JSON


@dataclass
class Request:
    id: str | None
    inputs: list[Tensor]
    outputs: list[str] | None = None  # the requested output names (None: all)
    binary_outputs: set[str] = field(default_factory=set)
    binary_default: bool = False


def datatype_of(dtype: Any) -> str:
    """The v2 datatype of a numpy dtype (FP32 for float32, ...)."""
    kind = np.dtype(dtype)
    for name, code in DTYPES.items():
        if code is not None and np.dtype(code) == kind.newbyteorder("<"):
            return name
    raise BadRequest(f"no v2 datatype for {kind.name}")


def parse_request(head: Any, tail: bytes, max_values: int) -> Request:
    """A parsed request (its JSON `head` and the binary `tail` after it), or BadRequest."""
    if not isinstance(head, dict):
        raise BadRequest('the body must be an object {"inputs": [...]}')
    inputs = head.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest('"inputs" must be a non-empty list of tensors')
    request_id = head.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest('"id" must be a string')
    pos, tensors, left = 0, [], max_values
    for i, spec in enumerate(inputs):
        tensor, pos = _input(i, spec, tail, pos, left, max_values)
        left -= math.prod(tensor.shape)
        tensors.append(tensor)
    if pos != len(tail):
        raise BadRequest(f"{len(tail) - pos} bytes after the JSON are not part of any input's binary_data_size")
    if len({t.name for t in tensors}) != len(tensors):
        raise BadRequest("two inputs have the same name")
    request = Request(request_id, tensors)
    params = head.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise BadRequest('"parameters" must be an object')
    request.binary_default = (params or {}).get("binary_data_output") is True
    wanted = head.get("outputs")
    if wanted is not None:
        if not isinstance(wanted, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted
        ):
            raise BadRequest('"outputs" must be a list of {"name": ...}')
        request.outputs = [o["name"] for o in wanted]
        for o in wanted:
            binary = o["parameters"].get("binary_data") if isinstance(o.get("parameters"), dict) else None
            if binary is True or (binary is None and request.binary_default):
                request.binary_outputs.add(o["name"])
    return request


def _input(i: int, spec: Any, tail: bytes, pos: int, left: int, max_values: int) -> tuple[Tensor, int]:
    if not isinstance(spec, dict):
        raise BadRequest(f"input {i} must be an object with name, shape, datatype and data")
    name, shape, datatype = spec.get("name"), spec.get("shape"), spec.get("datatype")
    if not isinstance(name, str) or not name:
        raise BadRequest(f'input {i} needs a "name"')
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_RANK
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape)
    ):
        raise BadRequest(f'input {name!r}: "shape" must be a list of sizes (whole numbers from 0)')
    if datatype not in DTYPES:
        raise BadRequest(f"input {name!r}: datatype {str(datatype)[:40]!r} is not one of {', '.join(DTYPES)}")
    count = math.prod(shape)
    if count > left:  # before the data is looked at
        raise BadRequest(f"input {name!r} of shape {shape} is over the {max_values} values a request may hold")
    params = spec.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise BadRequest(f'input {name!r}: "parameters" must be an object')
    size = (params or {}).get("binary_data_size")
    if ("data" in spec) == (size is not None):
        raise BadRequest(f'input {name!r} needs either "data" or parameters.binary_data_size (not both)')
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(tail) - pos:
            raise BadRequest(f"input {name!r}: binary_data_size {size!r} is beyond the {len(tail) - pos} bytes left")
        chunk = tail[pos : pos + size]
        value = (
            _binary_bytes(name, chunk, count) if datatype == "BYTES" else _binary_numbers(name, chunk, datatype, count)
        )
        return Tensor(name, datatype, shape, value, binary=True), pos + size
    value = _json_data(name, spec["data"], datatype, shape, count)
    return Tensor(name, datatype, shape, value), pos


def _binary_numbers(name: str, chunk: bytes, datatype: str, count: int) -> np.ndarray:
    dtype = np.dtype(DTYPES[datatype])
    if len(chunk) != count * dtype.itemsize:
        raise BadRequest(f"input {name!r}: {len(chunk)} bytes of {datatype} are not the {count} values of its shape")
    return np.frombuffer(chunk, dtype=dtype)


def _binary_bytes(name: str, chunk: bytes, count: int) -> list[bytes]:
    """BYTES in binary: each element a 4-byte little-endian length and that many bytes."""
    out, pos = [], 0
    while pos < len(chunk):
        if pos + 4 > len(chunk):
            raise BadRequest(f"input {name!r}: a BYTES element's length is cut off")
        (length,) = struct.unpack("<I", chunk[pos : pos + 4])
        if pos + 4 + length > len(chunk):
            raise BadRequest(f"input {name!r}: a BYTES element runs past binary_data_size")
        out.append(chunk[pos + 4 : pos + 4 + length])
        pos += 4 + length
    if len(out) != count:
        raise BadRequest(f"input {name!r} holds {len(out)} BYTES elements; its shape says {count}")
    return out


def _json_data(name: str, data: Any, datatype: str, shape: list[int], count: int) -> Any:
    """Flat (row-major) or nested data with exactly the shape's count of values of the datatype."""
    if not isinstance(data, list):
        raise BadRequest(f'input {name!r}: "data" must be a list')
    depth, probe = 0, data
    while isinstance(probe, list) and probe and depth <= len(shape):
        depth, probe = depth + 1, probe[0]
    if depth > max(1, len(shape)):
        raise BadRequest(f'input {name!r}: "data" is nested deeper than its shape {shape}')
    if datatype == "BYTES":
        flat = _flatten(data, len(shape))
        if not all(isinstance(v, str) for v in flat):
            raise BadRequest(f"input {name!r}: BYTES data must be strings")
        if len(flat) != count:
            raise BadRequest(f"input {name!r} holds {len(flat)} values; its shape {shape} says {count}")
        return flat
    try:
        x = np.asarray(data)  # no dtype yet: strings, null and ragged lists show as what they are
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f'input {name!r}: "data" is ragged') from None
    if x.dtype.kind not in "biuf" or (datatype == "BOOL") != (x.dtype.kind == "b"):
        raise BadRequest(f"input {name!r}: {datatype} data must be {'booleans' if datatype == 'BOOL' else 'numbers'}")
    if x.size != count:
        raise BadRequest(f"input {name!r} holds {x.size} values; its shape {shape} says {count}")
    try:
        return _cast(x.reshape(-1), np.dtype(DTYPES[datatype]))
    except BadInstances as exc:
        raise BadRequest(f"input {name!r}: {exc}") from None


def _flatten(data: Any, rank: int) -> list:
    if rank <= 1 or not any(isinstance(v, list) for v in data):
        return list(data)
    return [v for row in data for v in (_flatten(row, rank - 1) if isinstance(row, list) else [row])]


def array(tensor: Tensor) -> np.ndarray:
    """A numeric tensor as an array of its shape."""
    return np.asarray(tensor.value).reshape(tensor.shape)


def encode_response(model: str, request: Request, outputs: list[Tensor]) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers; outputs asked for in binary go after the JSON."""
    head: dict[str, Any] = {"model_name": model, "model_version": "1", "id": request.id or str(uuid.uuid4())}
    everything = request.outputs is None and request.binary_default  # binary_data_output with no outputs named

    def binary(t: Tensor) -> bool:
        return everything or t.name in request.binary_outputs

    head["outputs"], tail = _encode_tensors(outputs, binary)
    return _with_tail(head, tail)


def encode_request(request: Request, inputs: list[Tensor]) -> tuple[bytes, dict[str, str]]:
    """A request for `inputs` (each as it came: JSON or binary); outputs are asked for in JSON."""
    head: dict[str, Any] = {"id": request.id or str(uuid.uuid4())}
    head["inputs"], tail = _encode_tensors(inputs, lambda t: t.binary)
    if request.outputs is not None:
        head["outputs"] = [{"name": name} for name in request.outputs]
    return _with_tail(head, tail)


def _encode_tensors(tensors: list[Tensor], binary: Any) -> tuple[list[dict], list[bytes]]:
    specs, tail = [], []
    for t in tensors:
        spec: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        if binary(t):
            if t.datatype == "BYTES":
                raw = b"".join(struct.pack("<I", len(v)) + v for v in _as_bytes(t.value))
            else:
                raw = np.ascontiguousarray(t.value, dtype=np.dtype(DTYPES[t.datatype])).tobytes()
            spec["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            spec["data"] = list(t.value) if t.datatype == "BYTES" else np.asarray(t.value).reshape(-1).tolist()
        specs.append(spec)
    return specs, tail


def _as_bytes(values: list) -> list[bytes]:
    return [v if isinstance(v, bytes) else str(v).encode() for v in values]


def _with_tail(head: dict, tail: list[bytes]) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(head, separators=(",", ":")).encode()  # NaN predictions as TF Serving writes them
    if not tail:
        return text, {"content-type": "application/json"}
    headers = {"content-type": "application/octet-stream", HEADER: str(len(text))}
    return text + b"".join(tail), headers


def batch_size(request: Request) -> int:
    """The rows of the request: every input's first axis, which must agree (BadRequest otherwise)."""
    sizes = {t.shape[0] if t.shape else -1 for t in request.inputs}
    if len(sizes) != 1 or -1 in sizes:
        raise BadRequest("every input must have the batch as its first axis, of the same size")
    return sizes.pop()


def take_rows(tensor: Tensor, rows: list[int]) -> Tensor:
    """The tensor of these rows (first axis), kept in the form it came in."""
    per_row = math.prod(tensor.shape[1:])
    if tensor.datatype == "BYTES":
        value: Any = [tensor.value[r * per_row + k] for r in rows for k in range(per_row)]
    else:
        value = np.asarray(tensor.value).reshape(tensor.shape[0], per_row)[rows].reshape(-1)
    return Tensor(tensor.name, tensor.datatype, [len(rows), *tensor.shape[1:]], value, tensor.binary)


def read_response(body: bytes, header_length: str | None) -> list[Tensor]:
    """The outputs of a (shard's) response, JSON or with binary data."""
    try:
        length = int(header_length) if header_length else len(body)
        head = json.loads(body[:length])
        tail, pos, out = body[length:], 0, []
        for spec in head["outputs"]:
            shape, datatype, count = list(spec["shape"]), spec["datatype"], math.prod(spec["shape"])
            size = (spec.get("parameters") or {}).get("binary_data_size")
            if size is None:
                value = spec["data"] if datatype == "BYTES" else np.asarray(spec["data"], dtype=DTYPES[datatype])
            elif datatype == "BYTES":
                value = _binary_bytes(spec["name"], tail[pos : pos + size], count)
            else:
                value = _binary_numbers(spec["name"], tail[pos : pos + size], datatype, count)
            pos += size or 0
            out.append(Tensor(spec["name"], datatype, shape, value))
        return out
    except (ValueError, KeyError, TypeError, IndexError, BadRequest) as exc:
        raise BadRequest(f"not a v2 inference response: {exc}") from None


def join_rows(parts: list[tuple[list[int], list[Tensor]]], rows: int) -> list[Tensor]:
    """Outputs of the whole request from each shard's (its rows, its outputs), in request order."""
    first = parts[0][1]
    joined = []
    for k, like in enumerate(first):
        per_row = math.prod(like.shape[1:])
        if like.datatype == "BYTES":
            values: list[Any] = [None] * (rows * per_row)
            for positions, outputs in parts:
                for j, r in enumerate(positions):
                    values[r * per_row : (r + 1) * per_row] = outputs[k].value[j * per_row : (j + 1) * per_row]
            joined.append(Tensor(like.name, like.datatype, [rows, *like.shape[1:]], values))
            continue
        out = np.empty((rows, per_row), dtype=np.dtype(DTYPES[like.datatype]))
        for positions, outputs in parts:
            got = outputs[k]
            if got.name != like.name or list(got.shape[1:]) != list(like.shape[1:]) or got.shape[0] != len(positions):
                raise BadRequest("the shards answered outputs of different names or shapes")
            out[positions] = np.asarray(got.value).reshape(len(positions), per_row)
        joined.append(Tensor(like.name, like.datatype, [rows, *like.shape[1:]], out.reshape(-1)))
    return joined
