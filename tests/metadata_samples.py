"""Images carrying metadata the way each tool's own code writes it, built in memory.

- AUTOMATIC1111 (modules/images.py, save_image_with_geninfo): PNG `parameters` tEXt via
  PngInfo.add_text; JPEG/WebP EXIF UserComment = piexif.helper.UserComment.dump(text,
  encoding="unicode"), i.e. b"UNICODE\\0" + UTF-16BE, in the Exif IFD.
- ComfyUI (nodes.py, SaveImage): PngInfo.add_text("prompt", json.dumps(prompt)) and one chunk per
  extra_pnginfo key ("workflow").
- InvokeAI (image_files_disk.py): PngInfo.add_text("invokeai_metadata", json.dumps(metadata)).
- Fooocus (modules/private_logger.py): "parameters" = json.dumps(metadata) and "fooocus_scheme".

This app's own `imagegen` chunk is tested on images it generated, not on a copy built here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image, PngImagePlugin

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent

A1111_TEXT = (
    "a lighthouse in a storm, <lora:detail:0.6>, (dramatic:1.2)\n"
    "Negative prompt: blurry, lowres\n"
    'Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, '
    'Size: 832x1216, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, '
    'Lora hashes: "detail: 7e1c3a2b9f", Version: v1.10.1'
)


def png_with_text(chunks: dict[str, str], size=(8, 8), colour=(30, 90, 160)) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def user_comment_exif(text: str) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    return exif.tobytes()


def with_exif(fmt: str, text: str, size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, fmt, exif=user_comment_exif(text))
    return buffer.getvalue()


def a1111_png() -> bytes:
    return png_with_text({"parameters": A1111_TEXT})


def a1111_webp() -> bytes:
    return with_exif("WEBP", A1111_TEXT)


COMFY_ADVANCED = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors",
                                                 "weight_dtype": "default"}},
    "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0],
                                                          "lora_name": "ink.safetensors",
                                                          "strength_model": 0.8}},
    "3": {"class_type": "PrimitiveNode", "inputs": {"value": "a paper boat on a puddle"}},
    "4": {"class_type": "CLIPTextEncode", "inputs": {"text": ["3", 0], "clip": ["9", 0]}},
    "5": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["4", 0], "guidance": 3.5}},
    "6": {"class_type": "BasicGuider", "inputs": {"model": ["2", 0], "conditioning": ["5", 0]}},
    "7": {"class_type": "RandomNoise", "inputs": {"noise_seed": 987654321}},
    "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "9": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl.safetensors"}},
    "10": {"class_type": "BasicScheduler", "inputs": {"model": ["2", 0], "scheduler": "simple",
                                                      "steps": 24, "denoise": 1.0}},
    "11": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 768,
                                                           "batch_size": 1}},
    "12": {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["7", 0], "guider": ["6", 0], "sampler": ["8", 0], "sigmas": ["10", 0],
        "latent_image": ["11", 0]}},
    "13": {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0], "vae": ["14", 0]}},
    "14": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
    "15": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI",
                                                 "images": ["13", 0]}},
}


def comfyui_png(graph=None, workflow=None) -> bytes:
    graph = COMFY_ADVANCED if graph is None else graph
    chunks = {"prompt": graph if isinstance(graph, str) else json.dumps(graph)}
    chunks["workflow"] = json.dumps(workflow or {"last_node_id": 15, "nodes": []})
    return png_with_text(chunks)


# The same kind of graph as ComfyUI's UI saves it (`workflow` only): widget values as lists in
# input order, a seed widget followed by its "control after generate" value, links as
# [id, origin node, origin slot, target node, target slot, type], a Reroute on the way, the
# seed widget fed by a primitive node, and a muted sampler that must not be read.
COMFY_UI_FLUX = {
    "last_node_id": 12, "last_link_id": 12, "version": 0.4,
    "nodes": [
        {"id": 1, "type": "UNETLoader", "widgets_values": ["flux1-dev.safetensors", "default"],
         "inputs": [], "outputs": [{"name": "MODEL", "links": [1, 9]}]},
        {"id": 2, "type": "CLIPTextEncode", "widgets_values": ["a glass lantern in fog"],
         "inputs": [{"name": "clip", "link": None}], "outputs": [{"name": "CONDITIONING"}]},
        {"id": 3, "type": "Reroute", "inputs": [{"name": "", "link": 2}],
         "outputs": [{"name": "", "links": [3]}]},
        {"id": 4, "type": "FluxGuidance", "widgets_values": [2.8],
         "inputs": [{"name": "conditioning", "link": 3}]},
        {"id": 5, "type": "CLIPTextEncode", "widgets_values": [""],
         "inputs": [{"name": "clip", "link": None}]},
        {"id": 6, "type": "EmptySD3LatentImage", "widgets_values": [896, 1152, 1]},
        {"id": 7, "type": "PrimitiveNode", "widgets_values": [31337, "fixed"],
         "outputs": [{"name": "INT", "links": [7], "widget": {"name": "seed"}}]},
        {"id": 8, "type": "KSampler",
         "widgets_values": [31337, "fixed", 28, 1, "euler", "simple", 1],
         "inputs": [{"name": "model", "link": 1}, {"name": "positive", "link": 4},
                    {"name": "negative", "link": 5}, {"name": "latent_image", "link": 6},
                    {"name": "seed", "link": 7, "widget": {"name": "seed"}}]},
        {"id": 9, "type": "KSampler", "mode": 2,
         "widgets_values": [1, "fixed", 5, 9, "ddim", "normal", 1],
         "inputs": [{"name": "model", "link": 9}]},
        {"id": 10, "type": "VAEDecode", "inputs": [{"name": "samples", "link": 10}]},
        {"id": 11, "type": "SaveImage", "widgets_values": ["flux"],
         "inputs": [{"name": "images", "link": 11}]},
    ],
    "links": [[1, 1, 0, 8, 0, "MODEL"], [2, 2, 0, 3, 0, "*"], [3, 3, 0, 4, 0, "CONDITIONING"],
              [4, 4, 0, 8, 1, "CONDITIONING"], [5, 5, 0, 8, 2, "CONDITIONING"],
              [6, 6, 0, 8, 3, "LATENT"], [7, 7, 0, 8, 4, "INT"], [9, 1, 0, 9, 0, "MODEL"],
              [10, 8, 0, 10, 0, "LATENT"], [11, 10, 0, 11, 0, "IMAGE"]],
}


def comfyui_workflow_only_png(workflow=None) -> bytes:
    return png_with_text({"workflow": json.dumps(COMFY_UI_FLUX if workflow is None
                                                 else workflow)})


INVOKE_4 = {
    "generation_mode": "txt2img", "positive_prompt": "a <b>bold</b> fox in a meadow",
    "negative_prompt": "", "width": 768, "height": 512, "seed": 42, "cfg_scale": 7.5,
    "steps": 30, "scheduler": "dpmpp_2m",
    "model": {"key": "a1b2", "hash": "blake3:00", "name": "dreamshaper-8", "base": "sd-1",
              "type": "main"},
}


def invokeai_png() -> bytes:
    return png_with_text({"invokeai_metadata": json.dumps(INVOKE_4)})


SAMPLE_FILES = {
    "a1111.webp": a1111_webp,
    "comfyui_custom_advanced.png": comfyui_png,
    "invokeai4.png": invokeai_png,
}


def sample(name: str) -> bytes:
    """One of the small files kept under tests/data/ (made again by `python -m
    tests.metadata_samples` when the formats here change)."""
    return (DATA / name).read_bytes()


if __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    for name, build in SAMPLE_FILES.items():
        (DATA / name).write_bytes(build())
        print(name, (DATA / name).stat().st_size, "bytes")
