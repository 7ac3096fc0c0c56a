"""Talks to a dmlc model server with KServe's own Python client (`kserve.InferenceRESTClient`).

Run by the Python of a separate venv that has the `kserve` package (tests/runtime/test_clients.py
makes it: kserve pins uvicorn[standard] and python-dateutil, which would change dmlc's own venv), so
this file imports nothing of dmlc. Usage: python kserve_client.py BASE_URL MODEL CASES.npz; CASES holds
`x` (float32 images scaled by 1/255) and `jpeg` (the same images as JPEG files, one bytes object
each). Prints one JSON report: what each client call answered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from importlib.metadata import version

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


async def main(base: str, model: str, cases: str) -> dict:
    data = np.load(cases, allow_pickle=True)
    x, jpegs = data["x"].astype(np.float32), list(data["jpeg"])
    report: dict = {"kserve": version("kserve"), "httpx": version("httpx")}

    v1 = InferenceRESTClient(RESTConfig(protocol="v1", timeout=120))
    report["v1_live"] = await v1.is_server_live(base)
    report["v1_model_ready"] = await v1.is_model_ready(base, model)
    reply = await v1.infer(base, {"instances": x.tolist()}, model_name=model)
    report["v1_predictions"] = reply["predictions"]
    book = {"instances": [{"image_bytes": {"b64": base64.b64encode(j).decode()}} for j in jpegs]}  # the book's form
    report["v1_book_jpeg_predictions"] = (await v1.infer(base, book, model_name=model))["predictions"]
    await v1.close()

    v2 = InferenceRESTClient(RESTConfig(protocol="v2", timeout=120))
    report["v2_live"] = await v2.is_server_live(base)
    report["v2_server_ready"] = await v2.is_server_ready(base)
    report["v2_model_ready"] = await v2.is_model_ready(base, model)
    async with httpx.AsyncClient(timeout=60) as plain:  # the client has no metadata call
        report["v2_metadata"] = (await plain.get(f"{base}/v2/models/{model}")).json()
    input_name = report["v2_metadata"]["inputs"][0]["name"]
    output_name = report["v2_metadata"]["outputs"][0]["name"]

    as_json = InferInput(input_name, list(x.shape), "FP32")
    as_json.set_data_from_numpy(x, binary_data=False)
    response = await v2.infer(base, InferRequest(model, [as_json], request_id="json-1"), model_name=model)
    report["v2_json_id"] = response.id
    report["v2_json_outputs"] = response.outputs[0].as_numpy().tolist()

    as_binary = InferInput(input_name, list(x.shape), "FP32")
    as_binary.set_data_from_numpy(x)  # binary_data=True: raw bytes after the JSON (the client's default)
    wanted = [RequestedOutput(output_name, parameters={"binary_data": True})]
    response = await v2.infer(base, InferRequest(model, [as_binary], request_outputs=wanted), model_name=model)
    report["v2_binary_outputs"] = response.outputs[0].as_numpy().tolist()

    images = InferInput(input_name, [len(jpegs)], "BYTES")
    images.set_data_from_numpy(np.array(jpegs, dtype=np.object_))  # JPEG files as a binary BYTES tensor
    response = await v2.infer(base, InferRequest(model, [images]), model_name=model)
    report["v2_jpeg_outputs"] = response.outputs[0].as_numpy().tolist()

    try:
        await v2.infer(base, InferRequest(model, [InferInput("nope", [1, 2], "FP32", [[0.0, 1.0]])]), model_name=model)
        report["v2_bad_input"] = "accepted"
    except httpx.HTTPStatusError as exc:
        report["v2_bad_input"] = exc.response.status_code
    await v2.close()
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
