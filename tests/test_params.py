"""The parameter rules shared by the form, the API and the docs."""

import pytest

from app.params import PARAMS, GenerationParams, ValidationFailed, validate


def test_defaults_fill_what_is_left_out():
    params = validate({"prompt": "a red fox"})
    assert params == GenerationParams(prompt="a red fox")
    assert (params.width, params.height, params.steps, params.cfg_scale, params.seed) == (
        1024, 1024, 30, 7.0, 0)


def test_prompt_is_stripped_and_empty_provider_means_default():
    params = validate({"prompt": "  a fox  ", "provider": "", "model": ""})
    assert params.prompt == "a fox"
    assert params.provider is None and params.model is None


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ({}, "prompt", "missing"),
        ({"prompt": "   "}, "prompt", "value_error"),
        ({"prompt": "x" * 2001}, "prompt", "string_too_long"),
        ({"prompt": 5}, "prompt", "string_type"),
        ({"prompt": "a", "negative_prompt": "n" * 1001}, "negative_prompt", "string_too_long"),
        ({"prompt": "a", "width": 576 + 1}, "width", "multiple_of"),
        ({"prompt": "a", "width": 448}, "width", "greater_than_equal"),
        ({"prompt": "a", "height": 2112}, "height", "less_than_equal"),
        ({"prompt": "a", "width": "1024"}, "width", "int_type"),
        ({"prompt": "a", "width": True}, "width", "int_type"),
        ({"prompt": "a", "width": 1024.5}, "width", "int_type"),
        ({"prompt": "a", "steps": 9}, "steps", "greater_than_equal"),
        ({"prompt": "a", "steps": 51}, "steps", "less_than_equal"),
        ({"prompt": "a", "cfg_scale": 0.5}, "cfg_scale", "greater_than_equal"),
        ({"prompt": "a", "cfg_scale": 20.5}, "cfg_scale", "less_than_equal"),
        ({"prompt": "a", "cfg_scale": float("nan")}, "cfg_scale", "finite_number"),
        ({"prompt": "a", "seed": -1}, "seed", "greater_than_equal"),
        ({"prompt": "a", "seed": 4294967295}, "seed", "less_than_equal"),
        ({"prompt": "a", "provider": "dall-e"}, "provider", "literal_error"),
        ({"prompt": "a", "height": None}, "height", "int_type"),
        ({"prompt": "a", "negative_prompt": None}, "negative_prompt", "string_type"),
        ({"prompt": None}, "prompt", "string_type"),
        ({"prompt": "a", "provider": None}, "provider", "string_type"),
        ({"prompt": "a", "seed": None}, "seed", "int_type"),
        ({"prompt": "a", "count": None}, "count", "int_type"),
        ({"prompt": "a", "count": 0}, "count", "greater_than_equal"),
        ({"prompt": "a", "count": 9}, "count", "less_than_equal"),
        ({"prompt": "a", "options": None}, "options", "dict_type"),
        ({"prompt": "a", "options": ["style_preset"]}, "options", "dict_type"),
        ({"prompt": "a", "seed": 4294967294, "count": 2}, "seed", "less_than_equal"),
        ({"prompt": "a", "colour": "red"}, "colour", "extra_forbidden"),
    ],
)
def test_each_rule_names_its_field(body, field, kind):
    with pytest.raises(ValidationFailed) as caught:
        validate(body)
    assert {"loc": ["body", field], "type": kind} == {
        k: v for k, v in caught.value.errors[0].items() if k in ("loc", "type")}
    assert caught.value.errors[0]["msg"]


def test_every_error_is_reported_at_once():
    with pytest.raises(ValidationFailed) as caught:
        validate({"prompt": "", "width": 1, "steps": 100, "extra": 1})
    fields = {e["loc"][1] for e in caught.value.errors}
    assert fields == {"prompt", "width", "steps", "extra"}


def test_body_must_be_an_object():
    with pytest.raises(ValidationFailed) as caught:
        validate(["prompt"])
    assert caught.value.errors[0]["loc"] == ["body"]


def test_integral_float_is_an_integer_and_int_is_a_number():
    params = validate({"prompt": "a", "width": 512.0, "cfg_scale": 3})
    assert params.width == 512 and isinstance(params.width, int)
    assert params.cfg_scale == 3.0 and isinstance(params.cfg_scale, float)


def test_limits_reach_both_ends():
    low = validate({"prompt": "a", "width": 512, "height": 2048, "steps": 10, "cfg_scale": 1,
                    "seed": 4294967294})
    assert (low.width, low.height, low.steps, low.seed) == (512, 2048, 10, 4294967294)


def test_json_schema_carries_the_same_rules():
    schemas = {p.name: p.json_schema() for p in PARAMS}
    assert schemas["width"] == {**schemas["width"], "type": "integer", "minimum": 512,
                                "maximum": 2048, "multipleOf": 64, "default": 1024}
    assert schemas["prompt"]["minLength"] == 1 and "default" not in schemas["prompt"]
    assert schemas["provider"]["enum"] == ["stability", "replicate", "openai", "offline"]
    assert schemas["count"] == {**schemas["count"], "type": "integer", "minimum": 1,
                                "maximum": 8, "default": 1}
    assert schemas["options"]["type"] == "object"
