"""The generation parameters and their rules: the one source for the form, the API and the docs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

PROVIDER_NAMES = ("stability", "replicate", "openai", "offline")
MAX_SEED = 4294967294
MAX_COUNT = 8


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # str, int, float or dict
    default: Any
    label: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    multiple_of: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False

    def json_schema(self) -> dict:
        schema: dict[str, Any] = {
            "type": {str: "string", int: "integer", float: "number", dict: "object"}[self.kind],
            "description": self.description,
        }
        for key, value in (
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("multipleOf", self.multiple_of),
            ("minLength", self.min_length),
            ("maxLength", self.max_length),
            ("enum", list(self.choices) if self.choices else None),
            ("default", None if self.required else self.default),
        ):
            if value is not None:
                schema[key] = value
        return schema


PARAMS: tuple[Param, ...] = (
    Param("prompt", str, None, "Prompt", "What to draw: 1–2000 characters, not blank.",
          min_length=1, max_length=2000, required=True),
    Param("negative_prompt", str, "", "Negative prompt", "What to keep out of the picture.",
          max_length=1000),
    Param("provider", str, None, "Provider",
          "Which provider generates the image; the configured default when omitted.",
          choices=PROVIDER_NAMES),
    Param("model", str, None, "Model",
          "A model the provider lists in /api/providers; the provider's default when omitted."),
    Param("width", int, 1024, "Width", "Width in pixels; mapped to the nearest size the model makes.",
          minimum=512, maximum=2048, multiple_of=64),
    Param("height", int, 1024, "Height",
          "Height in pixels; mapped to the nearest size the model makes.",
          minimum=512, maximum=2048, multiple_of=64),
    Param("steps", int, 30, "Steps", "Denoising steps (more detail, slower).",
          minimum=10, maximum=50),
    Param("cfg_scale", float, 7.0, "CFG scale",
          "How closely to follow the prompt; some models accept a narrower range.",
          minimum=1, maximum=20),
    Param("seed", int, 0, "Seed", "0 draws a random seed, which the record keeps. In a batch, "
          "image i uses seed + i.", minimum=0, maximum=MAX_SEED),
    Param("count", int, 1, "Images", "How many images to make at once (a batch), 1–8.",
          minimum=1, maximum=MAX_COUNT),
    Param("options", dict, None, "Model options",
          "The chosen model's own options, as /api/providers lists them (e.g. style_preset)."),
)
BY_NAME = {param.name: param for param in PARAMS}


@dataclass(frozen=True)
class GenerationParams:
    """A validated request; provider and model are None when the caller left them to defaults."""

    prompt: str
    negative_prompt: str = ""
    provider: str | None = None
    model: str | None = None
    width: int = 1024
    height: int = 1024
    steps: int = 30
    cfg_scale: float = 7.0
    seed: int = 0
    count: int = 1
    options: dict = field(default_factory=dict)
    # From the compatible APIs: options offered for whichever model is chosen (OpenAI's `quality`),
    # sent where the model takes them and otherwise named in the record's `ignored`; and the
    # names of parameters the caller could not pass on at all (A1111's `enable_hr`).
    offered: dict = field(default_factory=dict)
    ignored: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        values = asdict(self)
        del values["offered"], values["ignored"]
        return values


class ValidationFailed(Exception):
    """Carries errors in FastAPI's shape: [{"loc": [...], "msg": ..., "type": ...}]."""

    def __init__(self, errors: list[dict]):
        super().__init__(errors)
        self.errors = errors


def error(field: str | None, msg: str, kind: str) -> dict:
    return {"loc": ["body", field] if field else ["body"], "msg": msg, "type": kind}


def _check(param: Param, value: Any) -> tuple[Any, dict | None]:
    """The value converted to the parameter's type, or the first rule it breaks."""
    name = param.name
    if param.kind is dict:
        if not isinstance(value, Mapping):
            return None, error(name, "Input should be a valid dictionary", "dict_type")
        return dict(value), None
    if param.kind is str:
        if not isinstance(value, str):
            return None, error(name, "Input should be a valid string", "string_type")
        value = value.strip()
        if name == "prompt" and not value:
            return None, error(name, "Value error, prompt must not be blank", "value_error")
        if param.min_length and len(value) < param.min_length:
            return None, error(name, f"String should have at least {param.min_length} character",
                               "string_too_short")
        if param.max_length and len(value) > param.max_length:
            return None, error(name, f"String should have at most {param.max_length} characters",
                               "string_too_long")
        if param.choices and value not in param.choices:
            options = ", ".join(f"'{c}'" for c in param.choices[:-1])
            return None, error(name, f"Input should be {options} or '{param.choices[-1]}'",
                               "literal_error")
        return value, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        noun = "integer" if param.kind is int else "number"
        return None, error(name, f"Input should be a valid {noun}", f"{param.kind.__name__}_type")
    if param.kind is int:
        if isinstance(value, float) and not value.is_integer():
            return None, error(name, "Input should be a valid integer", "int_type")
        value = int(value)
    else:
        if not math.isfinite(value):
            return None, error(name, "Input should be a finite number", "finite_number")
        value = float(value)
    if param.minimum is not None and value < param.minimum:
        return None, error(name, f"Input should be greater than or equal to {param.minimum:g}",
                           "greater_than_equal")
    if param.maximum is not None and value > param.maximum:
        return None, error(name, f"Input should be less than or equal to {param.maximum:g}",
                           "less_than_equal")
    if param.multiple_of and value % param.multiple_of:
        return None, error(name, f"Input should be a multiple of {param.multiple_of}", "multiple_of")
    return value, None


def validate(body: Any) -> GenerationParams:
    """Check a decoded JSON body (or form data) against PARAMS; raise ValidationFailed."""
    if not isinstance(body, Mapping):
        raise ValidationFailed(
            [error(None, "Input should be a valid dictionary or object to extract fields from",
                   "model_attributes_type")]
        )
    errors = [
        error(str(key), "Extra inputs are not permitted", "extra_forbidden")
        for key in body
        if key not in BY_NAME
    ]
    values: dict[str, Any] = {}
    for param in PARAMS:
        if param.name not in body:
            if param.required:
                errors.append(error(param.name, "Field required", "missing"))
            continue
        value = body[param.name]  # null is a wrong type, for every field (as in pydantic)
        if value == "" and param.default is None and param.kind is str and not param.required:
            continue
        checked, problem = _check(param, value)
        if problem:
            errors.append(problem)
        else:
            values[param.name] = checked
    seed, count = values.get("seed", 0), values.get("count", 1)
    if seed and seed + count - 1 > MAX_SEED:
        errors.append(error("seed", f"Input should be at most {MAX_SEED - count + 1} for a batch "
                                    f"of {count} (image i uses seed + i)", "less_than_equal"))
    if errors:
        raise ValidationFailed(errors)
    return GenerationParams(**values)
