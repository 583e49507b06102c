"""Reading the generation parameters other tools (and this app) embed in their images.

AUTOMATIC1111 writes its infotext to a PNG `parameters` text chunk, or to the EXIF UserComment
of a JPEG or WebP; ComfyUI writes its API graph (`prompt`) and UI graph (`workflow`) as JSON
chunks; InvokeAI writes `invokeai_metadata` (3.x and later) or `sd-metadata` (2.x); Fooocus writes
JSON to `parameters` beside a `fooocus_scheme` chunk (or A1111's text with `Version: Fooocus`);
this app writes A1111's text and, since the batches, an `imagegen` JSON chunk. Everything read
is normalised to the same names as a generation request (prompt, negative_prompt, steps,
cfg_scale, seed, width, height, model) plus what else the tool said. Nothing here trusts the
metadata: oversized text is refused, JSON that does not parse is reported, graphs may have cycles.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image as PILImage

FORMATS = ("a1111", "comfyui", "invokeai", "fooocus", "imagegen", "none")
MAX_TEXT_BYTES = 2 * 1024 * 1024  # all metadata text together; a real graph is far smaller
MAX_GRAPH_DEPTH = 64

EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
EXIF_MODEL = 0x0110  # ComfyUI's WebP keeps "prompt:<json>" here
EXIF_MAKE = 0x010F  # ... and "workflow:<json>" here


class MetadataTooLarge(ValueError):
    """The image carries more metadata text than anything a real tool writes."""


@dataclass
class Metadata:
    format: str
    parameters: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        body = {"format": self.format, "parameters": self.parameters, "text": self.text}
        if self.warnings:
            body["warnings"] = self.warnings
        return body


def read(image: PILImage.Image) -> Metadata:
    """The parameters an opened (and loaded) image carries, whichever tool wrote them."""
    chunks = _text_chunks(image)
    if "imagegen" in chunks:
        return _imagegen(chunks)
    if "invokeai_metadata" in chunks or "sd-metadata" in chunks:
        return _invokeai(chunks)
    if "prompt" in chunks and _looks_like_json(chunks["prompt"]):
        return _comfyui(chunks["prompt"], chunks.get("workflow"))
    if "workflow" in chunks and _looks_like_json(chunks["workflow"]):
        return _comfyui(None, chunks["workflow"])
    if "parameters" in chunks:
        text = chunks["parameters"]
        if chunks.get("fooocus_scheme") == "fooocus" or _looks_like_json(text):
            return _fooocus_json(text)
        return _infotext(text)
    return Metadata("none")


# --- where the text lives ---------------------------------------------------------------------

def _text_chunks(image: PILImage.Image) -> dict[str, str]:
    """PNG text chunks, or the EXIF fields that carry the same text in a JPEG or WebP."""
    chunks: dict[str, str] = {}
    text = getattr(image, "text", None)
    if isinstance(text, dict):
        chunks.update({str(k): str(v) for k, v in text.items()})
    try:
        exif = image.getexif()
        comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT)
        make, model = exif.get(EXIF_MAKE), exif.get(EXIF_MODEL)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        comment = make = model = None
    if comment and "parameters" not in chunks:
        chunks["parameters"] = user_comment(comment)
    for value in (make, model):
        if isinstance(value, str) and ":" in value:
            key, _, body = value.partition(":")
            if key in ("prompt", "workflow"):
                chunks.setdefault(key, body)
    total = sum(len(v) for v in chunks.values())
    if total > MAX_TEXT_BYTES:
        raise MetadataTooLarge(
            f"the image carries {total / 1048576:.1f} MB of metadata text; at most "
            f"{MAX_TEXT_BYTES // 1048576} MB is read")
    return {k: v.replace("\0", "") for k, v in chunks.items()}


def user_comment(raw: bytes | str) -> str:
    """EXIF UserComment: an 8-byte character code, then the text (A1111: UNICODE + UTF-16BE)."""
    if isinstance(raw, str):
        return raw
    code, body = raw[:8], raw[8:]
    if code == b"UNICODE\0":
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            return body.decode("utf-16", "replace")
        # piexif writes big-endian; some tools little-endian: ASCII text has its zero bytes first
        # (big) or second (little).
        big = body[0::2].count(0) >= body[1::2].count(0)
        return body.decode("utf-16-be" if big else "utf-16-le", "replace")
    if code.startswith(b"ASCII"):
        return body.decode("ascii", "replace")
    return raw.decode("utf-8", "replace").strip("\0 ")


def _looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def _json(text: str, what: str, warnings: list[str]) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        warnings.append(f"{what} is not valid JSON; its parameters could not be read")
        return None


# --- value clean-up ----------------------------------------------------------------------------

def _int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,30}\s*", value):
        return int(value)
    number = _float(value)
    return int(number) if number is not None and number.is_integer() else None


def _float(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _str(value) -> str | None:
    return value if isinstance(value, str) else None


def _clean(parameters: dict) -> dict:
    """Typed common fields; values that are missing or unusable are left out."""
    kinds = {"prompt": _str, "negative_prompt": _str, "model": _str, "steps": _int,
             "cfg_scale": _float, "seed": _int, "width": _int, "height": _int}
    cleaned = {}
    for key, value in parameters.items():
        if value is None:
            continue
        if key in kinds:
            value = kinds[key](value)
            if value is None:
                continue
        cleaned[key] = value
    return cleaned


# --- AUTOMATIC1111 (and Fooocus written in its scheme) ------------------------------------------

# As A1111's modules/infotext_utils.py: "Key: value" pairs, a value optionally quoted JSON.
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_SIZE = re.compile(r"^(\d+)x(\d+)$")
A1111_NAMES = {"Steps": "steps", "CFG scale": "cfg_scale", "Seed": "seed", "Model": "model",
               "Model hash": "model_hash", "Sampler": "sampler", "Schedule type": "scheduler",
               "Denoising strength": "denoising_strength", "Clip skip": "clip_skip",
               "Version": "version"}


def parse_infotext(text: str) -> dict:
    """A1111's parse_generation_parameters: prompt lines, `Negative prompt:`, then settings."""
    *lines, last = text.strip().split("\n")
    if len(RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, in_negative = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    parameters: dict[str, Any] = {"prompt": "\n".join(prompt), "negative_prompt": "\n".join(negative)}
    settings: dict[str, str] = {}
    for key, value in RE_PARAM.findall(last):
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        settings[key] = str(value)
        size = RE_SIZE.match(str(value))
        if key == "Size" and size:
            parameters["width"], parameters["height"] = int(size[1]), int(size[2])
        elif key in A1111_NAMES:
            parameters[A1111_NAMES[key]] = value
    if settings:
        parameters["settings"] = settings
    return _clean(parameters)


def _infotext(text: str) -> Metadata:
    parameters = parse_infotext(text)
    fooocus = str(parameters.get("version", "")).lower().startswith("fooocus")
    return Metadata("fooocus" if fooocus else "a1111", parameters, text)


# --- Fooocus ------------------------------------------------------------------------------------

RE_PAIR = re.compile(r"^\(?\s*(\d+)\s*[,x×*]\s*(\d+)\s*\)?$")


def _fooocus_json(text: str) -> Metadata:
    warnings: list[str] = []
    data = _json(text, "the Fooocus parameters", warnings)
    if not isinstance(data, dict):
        if data is not None:
            warnings.append("the Fooocus parameters are not a JSON object")
        return Metadata("fooocus", {}, text, warnings)
    parameters = {
        "prompt": data.get("prompt"), "negative_prompt": data.get("negative_prompt"),
        "steps": data.get("steps"), "cfg_scale": data.get("guidance_scale"),
        "seed": data.get("seed"), "model": data.get("base_model"),
        "sampler": _str(data.get("sampler")), "scheduler": _str(data.get("scheduler")),
        "version": _str(data.get("version")), "styles": _str(data.get("styles")),
        "performance": _str(data.get("performance")),
    }
    size = RE_PAIR.match(str(data.get("resolution", "")))
    if size:
        parameters["width"], parameters["height"] = int(size[1]), int(size[2])
    return Metadata("fooocus", _clean(parameters), text, warnings)


# --- InvokeAI -----------------------------------------------------------------------------------

def _invokeai(chunks: dict[str, str]) -> Metadata:
    warnings: list[str] = []
    if "invokeai_metadata" in chunks:
        text = chunks["invokeai_metadata"]
        data = _json(text, "invokeai_metadata", warnings)
        if not isinstance(data, dict):
            return Metadata("invokeai", {}, text, warnings)
        model = data.get("model")
        if isinstance(model, dict):
            model = model.get("model_name") or model.get("name")
        parameters = {
            "prompt": data.get("positive_prompt"), "negative_prompt": data.get("negative_prompt"),
            "steps": data.get("steps"), "cfg_scale": data.get("cfg_scale"),
            "seed": data.get("seed"), "width": data.get("width"), "height": data.get("height"),
            "model": model, "scheduler": _str(data.get("scheduler")),
            "generation_mode": _str(data.get("generation_mode")),
        }
        return Metadata("invokeai", _clean(parameters), text, warnings)
    text = chunks["sd-metadata"]  # InvokeAI 2.x
    data = _json(text, "sd-metadata", warnings)
    image = data.get("image") if isinstance(data, dict) else None
    if not isinstance(image, dict):
        return Metadata("invokeai", {}, text, warnings)
    prompt = image.get("prompt")
    if isinstance(prompt, list):
        prompt = " ".join(p.get("prompt", "") for p in prompt if isinstance(p, dict))
    negative = None
    if isinstance(prompt, str):  # 2.x keeps the negative prompt in [brackets]
        found = re.findall(r"\[([^\]]*)\]", prompt)
        if found:
            negative = ", ".join(part.strip() for part in found)
            prompt = re.sub(r"\s*\[[^\]]*\]", "", prompt).strip()
    parameters = {
        "prompt": prompt, "negative_prompt": negative, "steps": image.get("steps"),
        "cfg_scale": image.get("cfg_scale"), "seed": image.get("seed"),
        "width": image.get("width"), "height": image.get("height"),
        "model": data.get("model_weights"), "sampler": _str(image.get("sampler")),
    }
    return Metadata("invokeai", _clean(parameters), text, warnings)


# --- ComfyUI ------------------------------------------------------------------------------------

SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
OUTPUTS = ("SaveImage", "PreviewImage", "SaveAnimatedWEBP", "SaveAnimatedPNG", "Image Save")
MODEL_KEYS = ("ckpt_name", "unet_name", "model_name", "gguf_name")
TEXT_KEYS = ("text", "text_g", "prompt", "string", "value", "text_l")
VALUE_KEYS = ("value", "seed", "noise_seed", "int", "float", "number", "steps", "cfg")


def _is_link(value) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str | int)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


class _Graph:
    """ComfyUI's API graph: {node id: {"class_type", "inputs"}}, links as [node id, output]."""

    def __init__(self, nodes: dict):
        self.nodes = {str(k): v for k, v in nodes.items() if isinstance(v, dict)}

    def node(self, link) -> dict | None:
        return self.nodes.get(str(link[0])) if _is_link(link) else None

    def inputs(self, node: dict | None) -> dict:
        inputs = node.get("inputs") if node else None
        return inputs if isinstance(inputs, dict) else {}

    def kind(self, node: dict | None) -> str:
        kind = node.get("class_type") if node else None
        return kind if isinstance(kind, str) else ""

    def value(self, raw, keys=VALUE_KEYS, depth=0):
        """A plain value, following links to primitive nodes (with a depth limit for cycles)."""
        while _is_link(raw) and depth < MAX_GRAPH_DEPTH:
            inputs = self.inputs(self.node(raw))
            raw = next((inputs[k] for k in keys if k in inputs), None)
            depth += 1
        return None if _is_link(raw) or isinstance(raw, dict | list) else raw

    def upstream(self, start, accept, follow) -> dict | None:
        """The first node from a link, walking up the inputs named by `follow`, that `accept`s."""
        seen: set[str] = set()
        queue = [start]
        while queue and len(seen) < 10_000:
            link = queue.pop(0)
            node = self.node(link)
            if node is None or str(link[0]) in seen:
                continue
            seen.add(str(link[0]))
            if accept(node):
                return node
            queue += [v for k, v in self.inputs(node).items() if follow(k) and _is_link(v)]
        return None

    def text(self, link) -> str | None:
        """The prompt a conditioning link carries, through combine/control nodes."""
        def has_text(node):
            inputs = self.inputs(node)
            return any(isinstance(self.value(inputs.get(k), TEXT_KEYS), str) for k in TEXT_KEYS
                       if k in inputs)

        node = self.upstream(link, has_text,
                             lambda name: "conditioning" in name or name in ("positive",
                                                                             "negative"))
        if node is None:
            return None
        inputs = self.inputs(node)
        for key in TEXT_KEYS:
            text = self.value(inputs.get(key), TEXT_KEYS)
            if isinstance(text, str):
                return text
        return None


def _sampler_nodes(graph: _Graph) -> list[dict]:
    def is_sampler(node):
        inputs = graph.inputs(node)
        return graph.kind(node) in SAMPLERS or (
            "positive" in inputs and ("seed" in inputs or "noise_seed" in inputs))

    found = []
    for output in (n for n in graph.nodes.values() if graph.kind(n) in OUTPUTS):
        for value in graph.inputs(output).values():
            node = graph.upstream(value, is_sampler, lambda name: True)
            if node is not None and node not in found:
                found.append(node)
    found += [n for _, n in sorted(graph.nodes.items(), key=lambda kv: _sort_key(kv[0]))
              if is_sampler(n) and n not in found]
    return found


def _sort_key(node_id: str):
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def _from_graph(graph: _Graph) -> dict:
    samplers = _sampler_nodes(graph)
    if not samplers:
        return {}
    sampler = samplers[0]
    inputs = graph.inputs(sampler)
    guider = graph.inputs(graph.node(inputs.get("guider")))  # SamplerCustomAdvanced
    noise = graph.inputs(graph.node(inputs.get("noise")))
    sigmas = graph.inputs(graph.node(inputs.get("sigmas")))
    picker = graph.inputs(graph.node(inputs.get("sampler")))
    positive = inputs.get("positive", guider.get("positive", guider.get("conditioning")))
    negative = inputs.get("negative", guider.get("negative"))
    seed = inputs.get("seed", inputs.get("noise_seed", noise.get("noise_seed")))
    parameters = {
        "prompt": graph.text(positive) if positive is not None else None,
        "negative_prompt": graph.text(negative) if negative is not None else None,
        "seed": graph.value(seed),
        "steps": graph.value(inputs.get("steps", sigmas.get("steps"))),
        "cfg_scale": graph.value(inputs.get("cfg", guider.get("cfg"))),
        "sampler": _str(graph.value(inputs.get("sampler_name", picker.get("sampler_name")))),
        "scheduler": _str(graph.value(inputs.get("scheduler", sigmas.get("scheduler")))),
        "denoise": _float(graph.value(inputs.get("denoise", sigmas.get("denoise")))),
    }
    guidance = _flux_guidance(graph, positive)
    if guidance is not None:
        parameters["guidance"] = guidance
        cfg = _float(parameters["cfg_scale"])
        # Flux is distilled: its sampler runs at CFG 1 (or has none) and the guidance is the
        # value that plays the CFG scale's part.
        if cfg is None or cfg == 1.0:
            parameters["cfg_scale"] = guidance
    model_link = inputs.get("model", guider.get("model", sigmas.get("model")))
    loader = graph.upstream(
        model_link, lambda node: any(isinstance(graph.inputs(node).get(k), str)
                                     for k in MODEL_KEYS),
        lambda name: name == "model")
    if loader is not None:
        loader_inputs = graph.inputs(loader)
        parameters["model"] = next(loader_inputs[k] for k in MODEL_KEYS
                                   if isinstance(loader_inputs.get(k), str))
    latent = graph.upstream(inputs.get("latent_image"),
                            lambda node: "width" in graph.inputs(node),
                            lambda name: name in ("samples", "latent_image", "latent"))
    if latent is not None:
        parameters["width"] = graph.value(graph.inputs(latent).get("width"))
        parameters["height"] = graph.value(graph.inputs(latent).get("height"))
    parameters["sampler_node"] = graph.kind(sampler)
    return _clean(parameters)


# The UI workflow keeps each node's widget values as a list, in the order of the node's inputs
# (ComfyUI's INPUT_TYPES); a seed widget is followed by its "control after generate" choice.
WIDGETS = {
    "KSampler": ("seed", None, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", None, "steps", "cfg", "sampler_name",
                         "scheduler", "start_at_step", "end_at_step",
                         "return_with_leftover_noise"),
    "SamplerCustom": ("add_noise", "noise_seed", None, "cfg"),
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("width", "height", "crop_w", "crop_h", "target_width",
                           "target_height", "text_g", "text_l"),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl", "guidance"),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CheckpointLoader": ("config_name", "ckpt_name"),
    "UNETLoader": ("unet_name", "weight_dtype"),
    "UnetLoaderGGUF": ("unet_name",),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "HypernetworkLoader": ("hypernetwork_name", "strength"),
    "FluxGuidance": ("guidance",),
    "RandomNoise": ("noise_seed", None),
    "KSamplerSelect": ("sampler_name",),
    "BasicScheduler": ("scheduler", "steps", "denoise"),
    "CFGGuider": ("cfg",),
    "PrimitiveNode": ("value", None),
    "SaveImage": ("filename_prefix",),
}
UNWIRED = ("Reroute",)  # pass their one input through
MAX_WORKFLOW_NODES = 10_000


def _link_table(links) -> dict:
    """Link id -> (origin node id, origin slot), from the list or the object form."""
    table = {}
    for link in links if isinstance(links, list) else []:
        if isinstance(link, list) and len(link) >= 5:
            table[link[0]] = (link[1], link[2])
        elif isinstance(link, dict) and "id" in link:
            table[link["id"]] = (link.get("origin_id"), link.get("origin_slot", 0))
    return table


def workflow_graph(workflow: dict) -> dict:
    """The UI workflow as an API graph: {id: {"class_type", "inputs"}} with links as [id, slot].

    Widget values are named by WIDGETS (or taken as they are when a node keeps them by name);
    a widget fed by a link takes the link. Nodes of unknown types keep their links only.
    """
    nodes = [n for n in workflow.get("nodes", [])[:MAX_WORKFLOW_NODES] if isinstance(n, dict)]
    links = _link_table(workflow.get("links"))
    by_id = {str(n.get("id")): n for n in nodes}

    def origin(link_id, depth=0):
        found = links.get(link_id)
        while found is not None and depth < MAX_GRAPH_DEPTH:
            node = by_id.get(str(found[0]))
            if node is None or node.get("type") not in UNWIRED:
                break
            inputs = node.get("inputs") or [{}]
            found = links.get(inputs[0].get("link") if isinstance(inputs[0], dict) else None)
            depth += 1
        return [str(found[0]), found[1]] if found is not None and _is_slot(found[1]) else None

    graph = {}
    for node in nodes:
        kind = node.get("type")
        if not isinstance(kind, str) or node.get("mode") in (2, 4):  # muted or bypassed
            continue
        inputs: dict = {}
        widgets = node.get("widgets_values")
        if isinstance(widgets, dict):
            inputs.update({k: v for k, v in widgets.items() if isinstance(k, str)})
        elif isinstance(widgets, list):
            inputs.update(_named_widgets(WIDGETS.get(kind, ()), widgets))
        for slot in node.get("inputs") or []:
            if not isinstance(slot, dict) or not isinstance(slot.get("name"), str):
                continue
            linked = origin(slot.get("link"))
            if linked is not None:
                widget = slot.get("widget")
                name = widget.get("name") if isinstance(widget, dict) else None
                inputs[name if isinstance(name, str) else slot["name"]] = linked
        graph[str(node.get("id"))] = {"class_type": kind, "inputs": inputs}
    return graph


CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")


def _named_widgets(names: tuple, values: list) -> dict:
    """Widget values by name; the "control after generate" slot (None) may be absent in older
    workflows, and is then not counted."""
    named, index = {}, 0
    for name in names:
        if index >= len(values):
            break
        value = values[index]
        if name is None:
            if isinstance(value, bool) or value in CONTROL_VALUES:
                index += 1
            continue
        named[name] = value
        index += 1
    return named


def _is_slot(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _flux_guidance(graph: _Graph, positive) -> float | None:
    """The guidance of a FluxGuidance (or CLIPTextEncodeFlux) node the positive prompt passes."""
    if positive is None:
        return None
    node = graph.upstream(positive, lambda n: "guidance" in graph.inputs(n),
                          lambda name: "conditioning" in name or name in ("positive", "negative"))
    return _float(graph.value(graph.inputs(node).get("guidance"))) if node else None


def _comfyui(prompt_text: str | None, workflow_text: str | None) -> Metadata:
    warnings: list[str] = []
    text = prompt_text if prompt_text is not None else workflow_text or ""
    if prompt_text is None:
        workflow = _json(text, "the ComfyUI workflow", warnings)
        if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
            if workflow is not None:
                warnings.append("the ComfyUI workflow has no list of nodes")
            return Metadata("comfyui", {}, text, warnings)
        parameters = _from_graph(_Graph(workflow_graph(workflow)))
        warnings.append("only the UI workflow is embedded; its parameters are read from the "
                        "nodes' widget values" if parameters else
                        "only the UI workflow is embedded, and no sampler node was found in it")
        return Metadata("comfyui", parameters, text, warnings)
    nodes = _json(prompt_text, "the ComfyUI prompt graph", warnings)
    if not isinstance(nodes, dict):
        if nodes is not None:
            warnings.append("the ComfyUI prompt graph is not a JSON object")
        return Metadata("comfyui", {}, text, warnings)
    parameters = _from_graph(_Graph(nodes))
    if not parameters:
        warnings.append("no sampler node found in the ComfyUI graph")
    return Metadata("comfyui", parameters, text, warnings)


# --- this app ----------------------------------------------------------------------------------

def _imagegen(chunks: dict[str, str]) -> Metadata:
    """The `imagegen` JSON (provider, model, seed, options, requested) over the A1111 text."""
    warnings: list[str] = []
    text = chunks.get("parameters", "")
    parameters = parse_infotext(text) if text else {}
    parameters.pop("settings", None)
    data = _json(chunks["imagegen"], "the imagegen chunk", warnings)
    if isinstance(data, dict):
        for key in ("provider", "model", "seed", "options", "requested"):
            if data.get(key) is not None:
                parameters[key] = data[key]
    return Metadata("imagegen", _clean(parameters), text or chunks["imagegen"], warnings)
