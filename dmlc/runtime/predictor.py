"""Load a SavedModel's `serving_default` signature as a numpy function (used by evaluate and serve).

The signature is what TF Serving / KServe would call, so serving through it keeps our REST server
and theirs answering the same numbers. A request's instances are checked against that signature
(`instances_array`: rank, shape, numbers only, finite, a size cap) before TensorFlow sees them: some
kernels do not check their inputs (oneDNN's convolution aborts the whole process on a 2-D input).
The same checks cover a typed tensor of KServe's v2 protocol (`tensor_array`).

A model whose input is an image (HxWxC with C = 1 or 3, floats: the book's models) also takes encoded
JPEG or PNG images: TF Serving's `{"b64": "..."}` (the book's chapter-9 client sends
`{"instances": [{"image_bytes": {"b64": ...}}]}`) or a v2 `BYTES` tensor. Each is checked from its
header first (a JPEG or PNG, at most MAX_IMAGE_PIXELS, all of them at most MAX_DECODED_PIXELS: a small
file cannot declare a huge picture), then decoded, converted to C channels, resized to HxW and scaled
by 1/255, which is how the training data was scaled (`ingest` divides images by 255).
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dmlc.runtime.step_io import UserError, read_json_file
from dmlc.runtime.tfenv import import_tf

MAX_VALUES = 4_000_000  # numbers in one request (16 MB as float32); the JSON body cap bounds memory first
MAX_IMAGE_PIXELS = 4096 * 4096  # one encoded image's declared size
MAX_DECODED_PIXELS = 32 * 1024 * 1024  # all the images of one request, decoded
ImageDecoder = Callable[[list[bytes]], np.ndarray]  # checked encoded images -> (N, H, W, C) float32 in 0..1


class BadInstances(ValueError):
    """Instances that do not fit the serving signature: the server answers HTTP 400 with this message."""


class Predictor:
    """`predict(x)` on a batch; `input_name`/`input_shape` describe what a request instance is."""

    def __init__(self, model_dir: str | Path) -> None:
        path = Path(model_dir)
        if not (path / "saved_model.pb").is_file():
            raise UserError(f"{model_dir} is not a SavedModel folder (no saved_model.pb)")
        tf, _ = import_tf()
        threads = int(os.environ.get("DMLC_SERVE_THREADS") or 0)
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        try:
            self._model = tf.saved_model.load(str(path))
        except Exception as exc:  # a damaged or foreign saved_model.pb: TF's own exception types vary
            raise UserError(f"cannot load the SavedModel in {model_dir}: {str(exc).splitlines()[0][:300]}") from None
        if "serving_default" not in getattr(self._model, "signatures", {}):
            raise UserError(f"{model_dir} has no serving_default signature")
        self._fn: Callable[..., dict[str, Any]] = self._model.signatures["serving_default"]
        _, kwargs = self._fn.structured_input_signature
        if len(kwargs) != 1:
            raise UserError(f"{model_dir}: the serving signature takes {len(kwargs)} inputs; dmlc serves one")
        self.input_name, spec = next(iter(kwargs.items()))
        self.input_dtype = spec.dtype
        self.input_shape: list[int | None] = list(spec.shape.as_list()[1:])
        self.output_name, out_spec = next(iter(self._fn.structured_outputs.items()))
        self.output_dtype = out_spec.dtype
        self.output_shape: list[int | None] = list(out_spec.shape.as_list()[1:])
        meta = path / "dmlc_metrics.json"
        self.meta: dict[str, Any] = read_json_file(meta) if meta.exists() else {}

    def predict(self, x: np.ndarray) -> np.ndarray:
        tf, _ = import_tf()
        tensor = tf.convert_to_tensor(np.asarray(x), dtype=self.input_dtype)
        return self._fn(**{self.input_name: tensor})[self.output_name].numpy()

    def predict_batched(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        return np.concatenate([self.predict(x[i : i + batch]) for i in range(0, len(x), batch)])

    @property
    def takes_images(self) -> bool:
        """An HxWxC float input with C = 1 or 3: encoded images can be decoded into it."""
        return takes_images(self.input_shape, self.input_dtype.as_numpy_dtype)

    def decode_images(self, blobs: list[bytes]) -> np.ndarray:
        """Encoded images (already checked by `check_images`) -> (N, H, W, C) float32 scaled by 1/255."""
        tf, _ = import_tf()
        height, width, channels = self.input_shape
        out = np.empty((len(blobs), height, width, channels), dtype=np.float32)
        for i, blob in enumerate(blobs):
            try:
                image = tf.io.decode_image(blob, channels=channels, expand_animations=False)
                if tuple(image.shape[:2]) != (height, width):
                    image = tf.image.resize(image, [height, width], antialias=True)
            except Exception as exc:  # a damaged file: TensorFlow's exception types vary
                message = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
                raise BadInstances(f"image {i} cannot be decoded: {message}") from None
            out[i] = np.clip(np.asarray(image, dtype=np.float32), 0.0, 255.0) / 255.0
        return out

    def instances_to_array(self, instances: Any) -> np.ndarray:
        """TF-Serving row format, checked against the signature (BadInstances when it does not fit)."""
        images = self.decode_images if self.takes_images else None
        dtype = self.input_dtype.as_numpy_dtype
        return instances_array(instances, self.input_name, self.input_shape, dtype, images=images)

    def tensor_to_array(self, x: np.ndarray) -> np.ndarray:
        """A v2 tensor (already shaped as the request said), checked against the signature."""
        return tensor_array(x, self.input_shape, self.input_dtype.as_numpy_dtype)

    def images_to_array(self, blobs: list[bytes]) -> np.ndarray:
        """Encoded images (a v2 BYTES tensor), checked and decoded (BadInstances when they do not fit)."""
        images = self.decode_images if self.takes_images else None
        return images_array(blobs, self.input_name, self.input_shape, self.input_dtype.as_numpy_dtype, images)


def takes_images(shape: list[int | None], dtype: Any) -> bool:
    return len(shape) == 3 and None not in shape and shape[2] in (1, 3) and np.dtype(dtype).kind == "f"


def instances_array(
    instances: Any,
    input_name: str,
    shape: list[int | None],
    dtype: Any,
    max_values: int = MAX_VALUES,
    images: ImageDecoder | None = None,
) -> np.ndarray:
    """The batch for `instances` (each the tensor, or {input_name: tensor}) as `dtype`, or BadInstances.

    Every instance must have the signature's rank and sizes (None: any size but 0) and hold finite
    numbers that `dtype` can represent; the whole batch at most `max_values` numbers. An instance may
    instead be an encoded image, `{"b64": ...}` or `{input_name: {"b64": ...}}`, decoded by `images`
    (a model without image input has none: such an instance is refused)."""
    want = "x".join("?" if d is None else str(d) for d in shape) or "a scalar"
    if not isinstance(instances, list):
        raise BadInstances(f"instances must be a list of instances, not {_kind(instances)}")
    if any(_b64_value(inst, input_name) is not None for inst in instances):
        return _b64_instances(instances, input_name, shape, dtype, max_values, images)
    rows = []
    for i, inst in enumerate(instances):
        if isinstance(inst, dict):
            if input_name not in inst:
                raise BadInstances(f"instance {i} is an object without the input {input_name!r}")
            inst = inst[input_name]
        rank = _rank(inst, len(shape) + 1)
        if rank != len(shape):
            got = str(rank) if rank <= len(shape) else f"over {len(shape)}"
            raise BadInstances(f"instance {i} has rank {got}: the model takes instances of shape {want}")
        rows.append(inst)
    np_dtype = np.dtype(dtype)
    if not rows:
        return np.zeros((0, *(d or 1 for d in shape)), dtype=np_dtype)
    try:
        x = np.asarray(rows)  # no dtype yet: strings, null, objects and ragged rows show as what they are
    except (ValueError, TypeError, OverflowError):
        raise BadInstances(f"instances are ragged: every instance must have shape {want}") from None
    if x.dtype.kind not in "biuf":
        raise BadInstances("instances must hold numbers only (no strings, null, objects or out-of-range integers)")
    if x.ndim != len(shape) + 1:
        raise BadInstances(f"instances are ragged: every instance must have shape {want}")
    return _check_batch(x, shape, want, np_dtype, max_values)


def tensor_array(x: np.ndarray, shape: list[int | None], dtype: Any, max_values: int = MAX_VALUES) -> np.ndarray:
    """A whole batch given as one tensor (KServe v2: `shape` [N, ...] + data), checked like instances:
    rank, sizes, numbers only, finite and within `dtype`, at most `max_values` numbers."""
    want = "x".join("?" if d is None else str(d) for d in shape) or "a scalar"
    if x.dtype.kind not in "biuf":
        raise BadInstances("the tensor must hold numbers only")
    if x.ndim != len(shape) + 1:
        got = "x".join(map(str, x.shape)) or "a scalar"
        raise BadInstances(f"the tensor has shape {got}: the model takes a batch of shape [N, {want}]")
    return _check_batch(x, shape, want, np.dtype(dtype), max_values)


def _check_batch(x: np.ndarray, shape: list[int | None], want: str, np_dtype: np.dtype, max_values: int) -> np.ndarray:
    for axis, (got, expected) in enumerate(zip(x.shape[1:], shape, strict=True)):
        if got == 0 or (expected is not None and got != expected):
            size = "x".join(map(str, x.shape[1:]))
            raise BadInstances(f"instances have shape {size}, the model takes {want} (axis {axis + 1} differs)")
    if x.size > max_values:
        raise BadInstances(f"the request holds {x.size} numbers; a request may hold at most {max_values}")
    return _cast(x, np_dtype)


def _b64_value(instance: Any, input_name: str) -> Any:
    """The "b64" value of an encoded-image instance ({"b64": ...} or {input_name: {"b64": ...}}), else None."""
    if isinstance(instance, dict):
        value = instance.get(input_name, instance)
        if isinstance(value, dict) and "b64" in value:
            return value["b64"]
    return None


def _b64_instances(
    instances: list, input_name: str, shape: list[int | None], dtype: Any, max_values: int, images: ImageDecoder | None
) -> np.ndarray:
    blobs = []
    for i, inst in enumerate(instances):
        text = _b64_value(inst, input_name)
        if text is None:
            raise BadInstances(f"instance {i} is not an encoded image like the others: send one kind per request")
        if not isinstance(text, str):
            raise BadInstances(f'instance {i}: "b64" must be a base64 string, not {_kind(text)}')
        try:
            blobs.append(decode_b64(text))
        except ValueError:
            raise BadInstances(f'instance {i}: "b64" is not valid base64') from None
    return images_array(blobs, input_name, shape, dtype, images, max_values)


def decode_b64(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional (TF Serving takes both alphabets); ValueError else."""
    text = "".join(text.split())
    if "-" in text or "_" in text:
        text = text.translate(str.maketrans("-_", "+/"))
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def images_array(
    blobs: list[bytes],
    input_name: str,
    shape: list[int | None],
    dtype: Any,
    images: ImageDecoder | None,
    max_values: int = MAX_VALUES,
) -> np.ndarray:
    """Encoded images -> the batch, or BadInstances: the model must take images, each blob must be a
    JPEG or PNG of a sane size (read from its header, before anything is decoded)."""
    want = "x".join("?" if d is None else str(d) for d in shape) or "a scalar"
    if images is None or not takes_images(shape, dtype):
        raise BadInstances(f"the model's input {input_name!r} ({want}) is not an image: send numbers, not images")
    if len(blobs) * math.prod(shape) > max_values:  # type: ignore[arg-type]  # takes_images: no None
        raise BadInstances(f"the request holds {len(blobs)} images; a request may hold at most {max_values} numbers")
    check_images(blobs)
    if not blobs:
        return np.zeros((0, *shape), dtype=np.dtype(dtype))  # type: ignore[arg-type]
    return _cast(images(blobs), np.dtype(dtype))


def check_images(blobs: list[bytes]) -> None:
    """Each blob a JPEG or PNG whose header declares at most MAX_IMAGE_PIXELS, all of them at most
    MAX_DECODED_PIXELS (BadInstances otherwise): a few kilobytes can declare a gigapixel picture."""
    total = 0
    for i, blob in enumerate(blobs):
        size = image_size(blob)
        if size is None:
            raise BadInstances(f"image {i} is not a JPEG or PNG file")
        width, height = size
        if not width or not height:
            raise BadInstances(f"image {i} declares an empty picture ({width}x{height})")
        if width * height > MAX_IMAGE_PIXELS:
            raise BadInstances(f"image {i} is {width}x{height} pixels; an image may have at most {MAX_IMAGE_PIXELS}")
        total += width * height
    if total > MAX_DECODED_PIXELS:
        raise BadInstances(f"the images hold {total} pixels; a request may hold at most {MAX_DECODED_PIXELS}")


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(blob: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's frame header; None when it is neither."""
    if blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) >= 24 and blob[12:16] == b"IHDR":
        width, height = struct.unpack(">II", blob[16:24])
        return width, height
    if blob[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(blob):
        if blob[pos] != 0xFF:
            return None
        marker = blob[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", blob[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > len(blob):
                return None
            height, width = struct.unpack(">HH", blob[pos + 5 : pos + 9])
            return width, height
        if marker in (0xD9, 0xDA) or length < 2:  # end of image, or the scan began without a frame header
            return None
        pos += 2 + length
    return None


def _cast(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            out = x.astype(dtype)
        if not np.isfinite(out).all():
            raise BadInstances(f"instances must hold finite numbers within the range of {dtype.name}")
        return out
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if x.dtype.kind == "f" and not (np.isfinite(x).all() and (x == np.floor(x)).all()):
            raise BadInstances(f"instances must hold whole numbers: the model's input is {dtype.name}")
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise BadInstances(f"instances must hold numbers from {info.min} to {info.max} ({dtype.name})")
        return x.astype(dtype)
    if dtype.kind == "b":
        return x.astype(dtype)
    raise BadInstances(f"this server cannot feed the model's input type {dtype.name} from JSON numbers")


def _rank(value: Any, limit: int) -> int:
    """Nesting depth along first elements, at most limit + 1: deep JSON is refused before numpy walks it."""
    rank = 0
    while isinstance(value, list) and rank <= limit:
        rank += 1
        if not value:
            break
        value = value[0]
    return rank


def _kind(value: Any) -> str:
    return {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
