"""Reading other tools' embedded parameters: real files of theirs, fixtures in their formats,
and hostile metadata."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from app import metadata
from tests import metadata_samples as samples

# Other projects' files, read where they lie (never copied into this repository).
SAMPLES = Path(os.environ.get("METADATA_SAMPLES")
               or samples.ROOT.parent / "shared" / "samples" / "metadata")


def read_bytes(data: bytes) -> metadata.Metadata:
    image = Image.open(io.BytesIO(data))
    image.load()
    return metadata.read(image)


def real(name: str) -> metadata.Metadata:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"no sample images at {SAMPLES} (other tools' outputs, kept outside the repo)")
    return read_bytes(path.read_bytes())


def test_a1111_png_from_a1111():
    found = real("a1111.png")
    assert found.format == "a1111"
    assert found.text.startswith("photo of a duck\nNegative prompt: monochrome")
    assert {k: found.parameters[k] for k in ("prompt", "negative_prompt", "steps", "cfg_scale",
                                             "seed", "width", "height", "model", "sampler")} == {
        "prompt": "photo of a duck", "negative_prompt": "monochrome", "steps": 15,
        "cfg_scale": 5.0, "seed": 235284042, "width": 512, "height": 400,
        "model": "realistic_realisticVisionV20_v20", "sampler": "UniPC"}


def test_a1111_jpeg_exif_user_comment_big_endian():
    found = real("a1111.jpg")
    assert found.format == "a1111"
    assert found.parameters["prompt"] == "photo of a duck"
    assert found.parameters["seed"] == 235284042
    assert found.parameters["model_hash"] == "c0d1994c73"


def test_comfyui_graph_from_comfyui():
    found = real("comfyui.png")
    assert found.format == "comfyui"
    assert json.loads(found.text)["3"]["class_type"] == "KSampler"
    p = found.parameters
    assert p["prompt"] == "woman (fennec ears fox ears:1.1), marble statue, museum"
    assert p["negative_prompt"] == "text, watermark"
    assert (p["seed"], p["steps"], p["cfg_scale"]) == (572636856966402, 20, 8.0)
    assert (p["width"], p["height"]) == (512, 512)
    # through the HypernetworkLoader to the checkpoint
    assert p["model"] == "v1-5-pruned-emaonly.ckpt"


def test_comfyui_img2img_has_no_latent_size():
    p = real("comfyui_img2img.png").parameters
    assert p["prompt"].startswith("photograph of victorian woman with wings")
    assert p["model"] == "v1-5-pruned-emaonly.ckpt" and p["denoise"] == pytest.approx(0.87)
    assert "width" not in p


def test_invokeai_3_from_invokeai():
    found = real("invokeai.png")
    assert found.format == "invokeai"
    p = found.parameters
    assert p["prompt"].startswith("digital artwork, oil painting")
    assert (p["seed"], p["steps"], p["cfg_scale"], p["width"]) == (3293022630, 35, 8.0, 1024)
    assert p["model"] == "juggernautXL"


def test_fooocus_json_scheme_from_fooocus():
    found = real("fooocus.png")
    assert found.format == "fooocus"
    p = found.parameters
    assert p["prompt"] == "a smiling goldfish"
    assert p["seed"] == 6952411511246973023
    assert (p["width"], p["height"], p["steps"], p["cfg_scale"]) == (768, 1280, 30, 4.0)
    assert p["model"] == "juggernautXL_v8Rundiffusion"


def test_a1111_webp_little_endian_exif():
    found = read_bytes(samples.sample("a1111.webp"))
    assert found.format == "a1111"
    p = found.parameters
    assert p["prompt"] == "a lighthouse in a storm, <lora:detail:0.6>, (dramatic:1.2)"
    assert p["negative_prompt"] == "blurry, lowres"
    assert (p["steps"], p["cfg_scale"], p["seed"]) == (28, 6.5, 1234567890)
    assert (p["width"], p["height"], p["scheduler"]) == (832, 1216, "Karras")
    assert p["settings"]["Lora hashes"] == "detail: 7e1c3a2b9f"  # a quoted value, unquoted


def test_a1111_jpeg_built_like_a1111():
    found = read_bytes(samples.with_exif("JPEG", samples.A1111_TEXT))
    assert found.format == "a1111" and found.parameters["model"] == "sd_xl_base_1.0"


def test_comfyui_custom_advanced_follows_links():
    p = read_bytes(samples.sample("comfyui_custom_advanced.png")).parameters
    assert p["prompt"] == "a paper boat on a puddle"  # CLIPTextEncode.text -> PrimitiveNode
    assert p["seed"] == 987654321  # RandomNoise
    assert (p["steps"], p["scheduler"], p["sampler"]) == (24, "simple", "euler")
    assert p["model"] == "flux1-dev.safetensors"  # through the LoRA loader
    assert (p["width"], p["height"]) == (1024, 768)


def test_comfyui_flux_guidance_is_the_cfg_scale():
    p = read_bytes(samples.sample("comfyui_custom_advanced.png")).parameters
    assert p["guidance"] == 3.5 and p["cfg_scale"] == 3.5  # FluxGuidance; no CFG on the sampler


def test_comfyui_workflow_only_is_read_from_the_widgets():
    found = read_bytes(samples.comfyui_workflow_only_png())
    assert found.format == "comfyui"
    assert found.warnings == ["only the UI workflow is embedded; its parameters are read from "
                              "the nodes' widget values"]
    p = found.parameters
    assert p["prompt"] == "a glass lantern in fog"  # through the Reroute and FluxGuidance
    assert p["negative_prompt"] == ""
    assert (p["seed"], p["steps"], p["sampler"], p["scheduler"]) == (31337, 28, "euler", "simple")
    assert (p["cfg_scale"], p["guidance"]) == (2.8, 2.8)  # the sampler's CFG is 1
    assert (p["width"], p["height"], p["model"]) == (896, 1152, "flux1-dev.safetensors")


def test_comfyui_workflow_of_an_older_version_without_the_control_value():
    workflow = json.loads(json.dumps(samples.COMFY_UI_FLUX))
    sampler = next(n for n in workflow["nodes"] if n["id"] == 8)
    sampler["widgets_values"] = [31337, 28, 4.5, "euler", "simple", 1]
    p = read_bytes(samples.comfyui_workflow_only_png(workflow)).parameters
    assert (p["seed"], p["steps"], p["cfg_scale"], p["sampler"]) == (31337, 28, 4.5, "euler")


@pytest.mark.parametrize("name", ["comfyui.png", "comfyui_img2img.png"])
def test_comfyui_workflow_alone_reads_as_the_prompt_graph(name):
    """ComfyUI's own files with the API graph taken out: the UI workflow says the same."""
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"no sample images at {SAMPLES} (other tools' outputs, kept outside the repo)")
    image = Image.open(path)
    image.load()
    from_graph = metadata.read(image).parameters
    alone = read_bytes(samples.png_with_text({"workflow": image.text["workflow"]}))
    assert alone.parameters == from_graph and from_graph["prompt"]


@pytest.mark.parametrize("workflow", ['{"nodes": 5}', "[1, 2]", '{"nodes": [{"id": 1}]}',
                                      '{"nodes": [{"id": 1, "type": "KSampler", '
                                      '"widgets_values": {"seed": [1, 2]}}], "links": 7}'])
def test_malformed_comfyui_workflow_is_read_safely(workflow):
    found = read_bytes(samples.png_with_text({"workflow": workflow}))
    assert found.format == "comfyui" and found.warnings


def test_invokeai_4_model_object():
    found = read_bytes(samples.sample("invokeai4.png"))
    assert found.format == "invokeai"
    assert found.parameters["model"] == "dreamshaper-8"
    assert found.parameters["prompt"] == "a <b>bold</b> fox in a meadow"  # kept as text


def test_this_apps_own_chunk_from_a_generation(make_app, fake_stability):
    """A file this app wrote reads back as it was asked for, options included."""
    app = make_app(STABILITY_API_KEY=fake_stability.api_key, STABILITY_BASE_URL=fake_stability.url)
    response = app.test_client().post("/api/generate", json={
        "prompt": "a tidy desk, morning light", "negative_prompt": "clutter",
        "provider": "stability", "model": "sd3.5-large", "seed": 77, "cfg_scale": 5,
        "options": {"style_preset": "photographic"}})
    assert response.status_code == 201, response.get_data(as_text=True)
    record = response.get_json()
    found = read_bytes((Path(app.config["IMAGES_DIR"]) / record["filename"]).read_bytes())
    assert found.format == "imagegen" and not found.warnings
    p = found.parameters
    assert (p["provider"], p["model"], p["seed"]) == ("stability", "sd3.5-large", 77)
    assert p["prompt"] == "a tidy desk, morning light" and p["negative_prompt"] == "clutter"
    assert p["options"] == {"style_preset": "photographic"}
    assert (p["width"], p["height"], p["cfg_scale"]) == (record["width"], record["height"], 5.0)
    assert p["requested"]["seed"] == 77 and "prompt" not in p["requested"]


def test_this_apps_chunk_of_a_model_without_seed(make_app, fake_openai):
    app = make_app(OPENAI_API_KEY=fake_openai.api_key, OPENAI_BASE_URL=fake_openai.url + "/v1")
    response = app.test_client().post("/api/generate", json={
        "prompt": "a paper crane", "provider": "openai", "width": 1024, "height": 1024})
    assert response.status_code == 201, response.get_data(as_text=True)
    record = response.get_json()
    found = read_bytes((Path(app.config["IMAGES_DIR"]) / record["filename"]).read_bytes())
    assert found.format == "imagegen" and found.parameters["provider"] == "openai"
    assert "seed" not in found.parameters and found.parameters["prompt"] == "a paper crane"


def test_fooocus_in_a1111_scheme():
    text = ("a cat\nNegative prompt: dog\nSteps: 30, Sampler: dpmpp_2m_sde_gpu, CFG scale: 4, "
            "Seed: 12, Size: 1152x896, Model: juggernautXL, Version: Fooocus v2.5.0")
    found = read_bytes(samples.png_with_text({"parameters": text, "fooocus_scheme": "a1111"}))
    assert found.format == "fooocus" and found.parameters["seed"] == 12


def test_prompt_only_text_and_multiline_prompts():
    found = read_bytes(samples.png_with_text({"parameters": "just a prompt\nsecond line"}))
    assert found.format == "a1111"
    assert found.parameters["prompt"] == "just a prompt\nsecond line"
    assert "seed" not in found.parameters


def test_no_metadata():
    found = read_bytes(samples.png_with_text({}))
    assert found.as_dict() == {"format": "none", "parameters": {}, "text": ""}


# --- hostile --------------------------------------------------------------------------------

def test_comfyui_graph_with_a_cycle_is_read_safely():
    graph = {
        "1": {"class_type": "KSampler", "inputs": {"seed": ["2", 0], "steps": 20, "cfg": 7,
                                                   "positive": ["3", 0], "negative": ["3", 0],
                                                   "model": ["4", 0], "latent_image": ["5", 0]}},
        "2": {"class_type": "Primitive", "inputs": {"value": ["2", 0]}},  # a link to itself
        "3": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["3", 0],
                                                              "conditioning_2": ["6", 0]}},
        "4": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0]}},
        "5": {"class_type": "LatentUpscale", "inputs": {"samples": ["5", 0]}},
        "6": {"class_type": "ConditioningSetArea", "inputs": {"conditioning": ["3", 0]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
    }
    found = read_bytes(samples.comfyui_png(graph))
    assert found.format == "comfyui"
    assert found.parameters["steps"] == 20
    assert "seed" not in found.parameters and "prompt" not in found.parameters


@pytest.mark.parametrize("graph", ['{"3": {"class_type": "KSampler", "inputs": ', "[1, 2, 3]",
                                   '{"1": "not a node", "2": {"inputs": [1]}}',
                                   "[" * 5000 + "]" * 5000])
def test_malformed_comfyui_json(graph):
    found = read_bytes(samples.comfyui_png(graph))
    assert found.format == "comfyui" and found.parameters == {}
    assert found.warnings


@pytest.mark.parametrize("chunks", [{"invokeai_metadata": "{broken"},
                                    {"parameters": "{not json", "fooocus_scheme": "fooocus"},
                                    {"imagegen": "[]", "parameters": "x"},
                                    {"invokeai_metadata": '{"seed": "abc", "steps": 1e400}'}])
def test_malformed_json_of_other_formats(chunks):
    found = read_bytes(samples.png_with_text(chunks))
    assert found.format in metadata.FORMATS
    assert "seed" not in found.parameters and "steps" not in found.parameters


def test_ten_megabyte_text_chunk_is_refused():
    data = samples.png_with_text({"parameters": "x" * (10 * 1024 * 1024)})
    with pytest.raises(metadata.MetadataTooLarge, match="MB of metadata"):
        read_bytes(data)


def test_values_of_the_wrong_type_are_left_out():
    text = "p\nSteps: many, CFG scale: nan, Seed: -, Size: hugexbig, Model: m"
    p = read_bytes(samples.png_with_text({"parameters": text})).parameters
    assert p["prompt"] == "p" and p["model"] == "m"
    assert not {"steps", "cfg_scale", "seed", "width"} & set(p)
