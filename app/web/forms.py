"""The generation form, built from the parameter definitions in app.params."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FloatField,
    HiddenField,
    IntegerField,
    SelectField,
    TextAreaField,
)
from wtforms.validators import Optional

from ..params import BY_NAME, Param


def _attributes(param: Param) -> dict:
    """HTML constraints mirroring the rules, so the browser can warn before submitting."""
    attrs = {"aria-describedby": f"{param.name}-help"}
    for attr, value in (
        ("min", param.minimum), ("max", param.maximum), ("step", param.multiple_of),
        ("maxlength", param.max_length),
    ):
        if value is not None:
            attrs[attr] = f"{value:g}" if isinstance(value, float) else value
    if param.required:
        attrs["required"] = True
    return attrs


def _field(field_class, name: str, **kwargs):
    param = BY_NAME[name]
    return field_class(param.label, description=param.description, render_kw=_attributes(param),
                       default=param.default, **kwargs)


class GenerateForm(FlaskForm):
    # Rules are checked by app.params.validate() after WTForms has parsed the types.
    prompt = _field(TextAreaField, "prompt")
    negative_prompt = _field(TextAreaField, "negative_prompt")
    provider = SelectField("Provider", choices=[], validate_choice=False)
    model = SelectField("Model", choices=[], validate_choice=False)
    width = _field(IntegerField, "width")
    height = _field(IntegerField, "height")
    steps = _field(IntegerField, "steps")
    cfg_scale = _field(FloatField, "cfg_scale")
    seed = _field(IntegerField, "seed", validators=[Optional()])
    count = _field(IntegerField, "count")
    random_seed = BooleanField("Random seed", description="A new seed each time; uncheck to "
                               "use the seed above.")
    # New on every render: a double submission of one page makes one image.
    idempotency_key = HiddenField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.option_errors: dict[str, str] = {}

    def parameters(self) -> dict:
        """The submitted values, as the JSON API would receive them."""
        data = {name: field.data for name, field in self._fields.items()
                if name in BY_NAME and field.data is not None}
        data["seed"] = 0 if self.random_seed.data else data.get("seed") or 0
        return data

    def add_errors(self, errors: list[dict]) -> None:
        """Attach the errors of a failed validation to the fields they concern."""
        for problem in errors:
            if problem["loc"][1:2] == ["options"]:
                self.option_errors[problem["loc"][-1]] = problem["msg"]
                continue
            name = problem["loc"][-1]
            field = self._fields.get(name)
            if field is not None:
                field.errors = [*field.errors, problem["msg"]]
