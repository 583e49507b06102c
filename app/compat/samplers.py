"""AUTOMATIC1111's sampler and scheduler names, and the option of a model they can become.

A1111 names a sampler ("Euler a", "DPM++ 2M") and, since 1.9, a separate noise schedule
("karras"); older versions put the schedule in the name ("DPM++ 2M Karras"). A model that lets
its sampler be chosen declares it as an option (Replicate SDXL's `scheduler`, Stability v1's
`sampler`, a schema's enum) with its own values (K_EULER_ANCESTRAL, KarrasDPM...). This table
says which values mean the same sampler; whether the model has such an option, and which
values it takes, comes from the model's declared options alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..providers.base import Option

# The options through which a model lets its sampler be chosen, in the order they are tried.
OPTION_NAMES = ("scheduler", "sampler", "sampler_name")
AUTOMATIC = "automatic"


@dataclass(frozen=True)
class Schedule:
    """One of A1111's noise schedules, as GET /sdapi/v1/schedulers lists it."""

    name: str
    label: str
    default_rho: float = -1
    need_inner_model: bool = False
    aliases: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Sampler:
    """One of A1111's samplers, and the values models give it per schedule ("" is the sampler's
    plain one). `automatic` is A1111's own default schedule for the sampler, else the plain one."""

    name: str
    aliases: tuple[str, ...] = ()
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    automatic: str = ""


# A1111 1.10's schedulers (modules/sd_schedulers.py), in its order.
SCHEDULES = (
    Schedule(AUTOMATIC, "Automatic"),
    Schedule("uniform", "Uniform", need_inner_model=True),
    Schedule("karras", "Karras", default_rho=7.0),
    Schedule("exponential", "Exponential"),
    Schedule("polyexponential", "Polyexponential", default_rho=1.0),
    Schedule("sgm_uniform", "SGM Uniform", need_inner_model=True, aliases=("SGMUniform",)),
    Schedule("kl_optimal", "KL Optimal"),
    Schedule("align_your_steps", "Align Your Steps"),
    Schedule("simple", "Simple", need_inner_model=True),
    Schedule("normal", "Normal", need_inner_model=True),
    Schedule("ddim", "DDIM", need_inner_model=True),
    Schedule("beta", "Beta", need_inner_model=True),
)

# A1111 1.10's samplers (modules/sd_samplers_kdiffusion.py, its options' default schedule as
# `automatic`), in its order, with the values models are known to call them: Replicate's
# cog models (K_EULER, KarrasDPM, KLMS...), diffusers' class names (EulerAncestralDiscrete...),
# Stability v1 (K_DPMPP_2M...) and ComfyUI's (euler_ancestral...). A model whose values are A1111's
# own names ("Euler a", "DPM++ 2M Karras") matches without being listed.
SAMPLERS = (
    Sampler("DPM++ 2M", ("k_dpmpp_2m",), {
        "": ("DPMSolverMultistep", "K_DPMPP_2M", "dpmpp_2m"),
        "karras": ("KarrasDPM", "DPMSolverMultistepKarras", "dpmpp_2m_karras")}, "karras"),
    Sampler("DPM++ SDE", ("k_dpmpp_sde",), {
        "": ("DPMSolverSDE", "dpmpp_sde"), "karras": ("DPMSolverSDEKarras",)}, "karras"),
    Sampler("DPM++ 2M SDE", ("k_dpmpp_2m_sde",), {
        "": ("dpmpp_2m_sde",), "karras": ("DPMSolverMultistepSDEKarras",)}, "exponential"),
    Sampler("DPM++ 2M SDE Heun", ("k_dpmpp_2m_sde_heun",), automatic="exponential"),
    Sampler("DPM++ 2S a", ("k_dpmpp_2s_a",), {
        "": ("K_DPMPP_2S_ANCESTRAL", "dpmpp_2s_ancestral")}, "karras"),
    Sampler("DPM++ 3M SDE", ("k_dpmpp_3m_sde",), {"": ("dpmpp_3m_sde",)}, "exponential"),
    Sampler("Euler a", ("k_euler_a", "k_euler_ancestral"), {
        "": ("K_EULER_ANCESTRAL", "EulerAncestralDiscrete", "euler_ancestral")}),
    Sampler("Euler", ("k_euler",), {"": ("K_EULER", "EulerDiscrete", "euler")}),
    Sampler("LMS", ("k_lms",), {"": ("K_LMS", "KLMS", "LMSDiscrete", "lms")}),
    Sampler("Heun", ("k_heun",), {"": ("K_HEUN", "HeunDiscrete", "heun")}),
    Sampler("DPM2", ("k_dpm_2",), {"": ("K_DPM_2", "KDPM2Discrete", "dpm_2")}),
    Sampler("DPM2 a", ("k_dpm_2_a",), {
        "": ("K_DPM_2_ANCESTRAL", "KDPM2AncestralDiscrete", "dpm_2_ancestral")}),
    Sampler("DPM fast", ("k_dpm_fast",), {"": ("dpm_fast",)}),
    Sampler("DPM adaptive", ("k_dpm_ad",), {"": ("dpm_adaptive",)}),
    Sampler("Restart", ("restart",), automatic="karras"),
    Sampler("DDIM", ("ddim",), {"": ("DDIM", "DDIMScheduler")}),
    Sampler("DDIM CFG++", ("ddim_cfgpp",)),
    Sampler("PLMS", ("plms", "PNDM"), {"": ("PNDM", "PNDMScheduler")}),
    Sampler("UniPC", ("unipc",), {"": ("UniPCMultistep", "uni_pc")}),
    Sampler("LCM", ("k_lcm",), {"": ("LCM", "LCMScheduler", "lcm")}),
)
# Names of older A1111 versions that carried their schedule in an alias.
LEGACY_ALIASES = {"k_lms_ka": ("LMS", "karras"), "k_dpm_2_ka": ("DPM2", "karras"),
                  "k_dpm_2_a_ka": ("DPM2 a", "karras"), "k_dpmpp_2m_ka": ("DPM++ 2M", "karras"),
                  "k_dpmpp_sde_ka": ("DPM++ SDE", "karras"),
                  "k_dpmpp_2s_a_ka": ("DPM++ 2S a", "karras")}


def _key(text: str) -> str:
    """Names compared as models spell them: "DPM++ 2M Karras", "DPM++2MKarras", "dpm++_2m_karras"."""
    return "".join(text.split()).replace("_", "").replace("-", "").casefold()


SAMPLER_BY_KEY = {_key(name): sampler for sampler in SAMPLERS
                  for name in (sampler.name, *sampler.aliases)}
SCHEDULE_BY_KEY = {_key(name): schedule for schedule in SCHEDULES
                   for name in (schedule.name, schedule.label, *(schedule.aliases or ()))}


@dataclass(frozen=True)
class Choice:
    """The model option an A1111 sampler became, and which A1111 names that honours."""

    option: str
    value: str
    sampler: str  # A1111's name of the sampler used
    schedule: Schedule | None  # the schedule asked for and used; None: the sampler's plain one
    scheduler_honoured: bool  # whether the `scheduler` field (when one was asked) was used


def parse_sampler(text) -> tuple[Sampler | None, Schedule | None]:
    """The sampler a name means, and the schedule it carries ("DPM++ 2M Karras", k_lms_ka)."""
    if not isinstance(text, str) or not text.strip():
        return None, None
    key = _key(text)
    if key in SAMPLER_BY_KEY:
        return SAMPLER_BY_KEY[key], None
    legacy = next((pair for alias, pair in LEGACY_ALIASES.items() if _key(alias) == key), None)
    if legacy:
        return SAMPLER_BY_KEY[_key(legacy[0])], SCHEDULE_BY_KEY[legacy[1]]
    for schedule in SCHEDULES[1:]:  # as A1111 reads an old name: the schedule's label at its end
        for suffix in (schedule.label, schedule.name, *(schedule.aliases or ())):
            if key.endswith(_key(suffix)) and key[:-len(_key(suffix))] in SAMPLER_BY_KEY:
                return SAMPLER_BY_KEY[key[:-len(_key(suffix))]], schedule
    return None, None


def parse_schedule(text) -> Schedule | None:
    """The schedule the `scheduler` field asks for; None for automatic, or one A1111 lacks."""
    if not isinstance(text, str):
        return None
    schedule = SCHEDULE_BY_KEY.get(_key(text))
    return None if schedule is None or schedule.name == AUTOMATIC else schedule


def _plain(scheduler) -> bool:
    """Whether the `scheduler` field asks for nothing but the sampler's own schedule."""
    return scheduler in (None, "") or (isinstance(scheduler, str) and _key(scheduler) == AUTOMATIC)


def _candidates(sampler: Sampler, schedule: Schedule | None) -> list[str]:
    if schedule is None:
        return [*sampler.values.get("", ()), sampler.name, *sampler.aliases]
    return [*sampler.values.get(schedule.name, ()), f"{sampler.name} {schedule.label}"]


def _match(options: Iterable[Option], candidates: list[str]) -> tuple[str, str] | None:
    """The first sampler-choosing option with a value among the candidates, and that value."""
    wanted = [_key(candidate) for candidate in candidates]
    for name in OPTION_NAMES:
        option = next((o for o in options if o.name == name), None)
        if option is None or option.kind != "string" or not option.choices:
            continue
        values = {_key(value): value for value in option.choices if isinstance(value, str)}
        found = next((values[key] for key in wanted if key in values), None)
        if found is not None:
            return name, found
    return None


def choose(options: Iterable[Option], sampler_name, scheduler) -> Choice | None:
    """The option value the A1111 sampler (and schedule) becomes on a model with these options,
    or None when the model has no such option or no value for the sampler.

    A schedule in the name must be met with it. `automatic` (or no `scheduler`) is A1111's
    default schedule for the sampler ("DPM++ 2M" runs Karras), else its plain value; a schedule
    in the `scheduler` field the model has no value for falls back to that (the field is then not
    honoured). A name that is no A1111 sampler may still be one of the model's own values.
    """
    options = tuple(options)
    sampler, named = parse_sampler(sampler_name)
    if sampler is None:
        if isinstance(sampler_name, str) and sampler_name.strip():
            found = _match(options, [sampler_name])
            if found:
                return Choice(*found, sampler=sampler_name.strip(), schedule=None,
                              scheduler_honoured=_plain(scheduler))
        return None
    if named is not None:
        found = _match(options, _candidates(sampler, named))
        return Choice(*found, sampler.name, named, True) if found else None
    asked = parse_schedule(scheduler)
    if asked is not None and (found := _match(options, _candidates(sampler, asked))):
        return Choice(*found, sampler.name, asked, True)
    automatic = SCHEDULE_BY_KEY[sampler.automatic] if sampler.automatic else None
    if automatic is not None and (found := _match(options, _candidates(sampler, automatic))):
        return Choice(*found, sampler.name, automatic, _plain(scheduler))
    found = _match(options, _candidates(sampler, None))
    return Choice(*found, sampler.name, None, _plain(scheduler)) if found else None


def sampler_list() -> list[dict]:
    """GET /sdapi/v1/samplers, in A1111's shape."""
    return [{"name": s.name, "aliases": list(s.aliases), "options": {}} for s in SAMPLERS]


def scheduler_list() -> list[dict]:
    """GET /sdapi/v1/schedulers, in A1111's shape."""
    return [{"name": s.name, "label": s.label,
             "aliases": list(s.aliases) if s.aliases is not None else None,
             "default_rho": s.default_rho, "need_inner_model": s.need_inner_model}
            for s in SCHEDULES]
