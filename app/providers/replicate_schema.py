"""Reading a Replicate model's input schema into a Model and the map of its inputs.

A Cog model publishes an OpenAPI schema whose `components.schemas.Input` lists its inputs, with
enums and named types behind `allOf: [{"$ref": ...}]`. The common parameters map onto the inputs
that exist by their usual names; the other plain inputs (strings, enums, numbers, booleans)
become the model's options. Built-in models are described the same way, from inputs written here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .base import Model, Option

# Global ranges of the common parameters (app.params), which a model's own range narrows.
COMMON_RANGES = {"steps": (10, 50), "cfg_scale": (1, 20)}
STEPS_NAMES = ("num_inference_steps", "steps", "num_steps")
GUIDANCE_NAMES = ("guidance_scale", "guidance", "cfg", "cfg_scale")
NEGATIVE_NAMES = ("negative_prompt",)
# Inputs never offered as options: one output per call, and images/masks to start from.
NOT_OPTIONS = {"prompt", "num_outputs", "seed", "width", "height", "aspect_ratio"}
PLAIN_TYPES = {"string": "string", "integer": "integer", "number": "number",
               "boolean": "boolean"}
MEGAPIXEL = 1024 * 1024


class SchemaError(ValueError):
    """The schema has no usable Input object."""


@dataclass(frozen=True)
class InputMap:
    """How the common parameters become one model's inputs."""

    official: bool = False  # run through /v1/models/{owner}/{name}/predictions
    version: str | None = None  # run by this version id (None: official, or not read yet)
    size: str = ""  # "wh" (width/height inputs), "aspect" (an aspect_ratio enum) or ""
    aspect_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    steps: str | None = None
    guidance: str | None = None
    negative: str | None = None
    seed: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)  # sent every time (num_outputs: 1, ...)


def resolve_refs(node: Any, schemas: dict, depth: int = 0) -> Any:
    """The node with every `$ref` replaced by what it names and single `allOf`s merged in."""
    if depth > 20:
        raise SchemaError("the schema's references nest too deeply")
    if isinstance(node, list):
        return [resolve_refs(item, schemas, depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/components/schemas/"):
            raise SchemaError(f"unsupported reference {ref!r}")
        target = schemas.get(ref.rsplit("/", 1)[-1])
        if target is None:
            raise SchemaError(f"the reference {ref!r} names nothing")
        merged = {**resolve_refs(target, schemas, depth + 1),
                  **{k: v for k, v in node.items() if k != "$ref"}}
        return resolve_refs(merged, schemas, depth + 1)
    resolved = {key: resolve_refs(value, schemas, depth + 1) for key, value in node.items()}
    for part in resolved.pop("allOf", None) or []:
        if isinstance(part, dict):
            resolved = {**part, **resolved}
    return resolved


def input_properties(openapi_schema: Any) -> dict[str, dict]:
    """The Input object's properties, dereferenced and in `x-order`."""
    try:
        schemas = openapi_schema["components"]["schemas"]
        properties = schemas["Input"]["properties"]
    except (KeyError, TypeError):
        raise SchemaError("the schema has no components.schemas.Input.properties") from None
    if not isinstance(properties, dict) or not isinstance(schemas, dict):
        raise SchemaError("the schema's Input is not an object")
    resolved = {name: resolve_refs(spec, schemas) for name, spec in properties.items()
                if isinstance(spec, dict)}
    return dict(sorted(resolved.items(), key=lambda item: _order(item[1])))


def _order(spec: dict) -> float:
    order = spec.get("x-order")
    return order if isinstance(order, int | float) else math.inf


def _ratio(name: str) -> float | None:
    width, sep, height = str(name).partition(":")
    try:
        return int(width) / int(height) if sep else None
    except (ValueError, ZeroDivisionError):
        return None


def one_megapixel(ratio: str) -> tuple[int, int]:
    """About the size a model makes for an aspect ratio at 1 MP (sides a multiple of 64)."""
    value = _ratio(ratio) or 1.0
    width = round(math.sqrt(MEGAPIXEL * value) / 64) * 64
    height = round(math.sqrt(MEGAPIXEL / value) / 64) * 64
    return width, height


def nearest_ratio(width: int, height: int, ratios) -> str:
    target = math.log(width / height)
    return min(ratios, key=lambda name: abs(math.log(_ratio(name)) - target))


def _narrowed(name: str, spec: dict) -> tuple[float, float] | None | bool:
    """The model's range for a common parameter: None when the app's own is inside it,
    False when the two do not overlap at all (the parameter is then left to the model)."""
    low, high = COMMON_RANGES[name]
    minimum, maximum = spec.get("minimum"), spec.get("maximum")
    mine_low = max(low, minimum) if isinstance(minimum, int | float) else low
    mine_high = min(high, maximum) if isinstance(maximum, int | float) else high
    if mine_low > mine_high:
        return False
    if (mine_low, mine_high) == (low, high):
        return None
    return (mine_low, mine_high)


def option_from(name: str, spec: dict) -> Option | None:
    """An input offered as an option, or None when it is not a plain value (a file, a list)."""
    kind = PLAIN_TYPES.get(spec.get("type"))
    choices = spec.get("enum")
    if kind is None and isinstance(choices, list) and choices:
        kind = "string" if all(isinstance(c, str) for c in choices) else None
    if kind is None or spec.get("format") == "uri":
        return None
    number = ("integer", "number")
    return Option(
        name=name, kind=kind, default=spec.get("default"),
        description=str(spec.get("description") or spec.get("title") or ""),
        choices=tuple(choices) if isinstance(choices, list) else (),
        minimum=spec.get("minimum") if kind in number else None,
        maximum=spec.get("maximum") if kind in number else None,
    )


def describe_model(ref: str, label: str, properties: dict[str, dict], *, notes: str = "",
                   official: bool = False, version: str | None = None,
                   options: tuple[str, ...] | None = None, defaults: dict | None = None,
                   fixed: dict | None = None,
                   sizes: dict[str, tuple[int, int]] | None = None) -> tuple[Model, InputMap]:
    """The Model and InputMap of a model with these (dereferenced) input properties.

    `options` picks which of the other inputs are offered (all plain ones when None);
    `defaults` overrides an option's default (FLUX's output_format: png, so files carry text).
    """
    if "prompt" not in properties:
        raise SchemaError("the model takes no prompt")
    honours: set[str] = set()
    limits: dict[str, tuple[float, float]] = {}
    mapped: dict[str, Any] = {}
    aspect = properties.get("aspect_ratio", {})
    ratios = [r for r in aspect.get("enum") or () if _ratio(r)]
    if "width" in properties and "height" in properties and not ratios:
        mapped["size"] = "wh"
    elif ratios:
        mapped["size"] = "aspect"
        mapped["aspect_sizes"] = {r: (sizes or {}).get(r) or one_megapixel(r) for r in ratios}
    if mapped.get("size"):
        honours |= {"width", "height"}
    for common, names, key in (("steps", STEPS_NAMES, "steps"),
                               ("cfg_scale", GUIDANCE_NAMES, "guidance")):
        name = next((n for n in names if n in properties), None)
        if name is None:
            continue
        narrowed = _narrowed(common, properties[name])
        if narrowed is False:
            continue
        mapped[key] = name
        honours.add(common)
        if narrowed:
            limits[common] = narrowed
    negative = next((n for n in NEGATIVE_NAMES if n in properties), None)
    if negative:
        mapped["negative"] = negative
        honours.add("negative_prompt")
    if "seed" in properties:
        mapped["seed"] = "seed"
    taken = NOT_OPTIONS | {mapped.get(k) for k in ("steps", "guidance", "negative")}
    offered = []
    for name, spec in properties.items():
        if name in taken or (options is not None and name not in options):
            continue
        option = option_from(name, spec)
        if option is not None:
            if defaults and name in defaults:
                option = Option(**{**option.__dict__, "default": defaults[name]})
            offered.append(option)
    sent = dict(fixed or {})
    if properties.get("num_outputs", {}).get("default", 1) != 1:
        sent["num_outputs"] = 1
    for name, value in (defaults or {}).items():
        if name in properties:
            sent.setdefault(name, value)
    model = Model(ref, label, honours=frozenset(honours), limits=limits,
                  sizes=tuple(mapped.get("aspect_sizes", {}).values()), notes=notes,
                  options=tuple(offered), takes_seed="seed" in properties)
    return model, InputMap(official=official, version=version, fixed=sent, **mapped)


def build_inputs(request, inputs: InputMap) -> dict:
    """The input object of one prediction."""
    sent: dict[str, Any] = {"prompt": request.prompt, **inputs.fixed}
    if inputs.size == "wh":
        sent.update(width=request.width, height=request.height)
    elif inputs.size == "aspect":
        sent["aspect_ratio"] = nearest_ratio(request.width, request.height, inputs.aspect_sizes)
    if inputs.steps:
        sent[inputs.steps] = request.steps
    if inputs.guidance:
        sent[inputs.guidance] = request.cfg_scale
    if inputs.negative and request.negative_prompt:
        sent[inputs.negative] = request.negative_prompt
    if inputs.seed:
        sent[inputs.seed] = request.seed
    sent.update(request.options)
    return sent
