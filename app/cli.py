"""`flask generate` and `flask images ...`: the same service and records, from the shell."""

from __future__ import annotations

import json
import sys

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from .extensions import db
from .generation import service
from .models import Image
from .params import ValidationFailed, validate
from .providers.base import ProviderError
from .spending import GROUPINGS, dollars, parse_time, spending
from .storage import StorageError


def _echo_record(record: Image) -> None:
    click.echo(json.dumps(record.to_dict(), ensure_ascii=False))


def _key_value(ctx, param, values) -> dict[str, str]:
    options = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{item}' is not KEY=VALUE", ctx=ctx, param=param)
        options[key.strip()] = value
    return options


@click.command("generate")
@click.argument("prompt")
@click.option("--provider", default=None, help="stability, replicate, openai or offline.")
@click.option("--model", default=None, help="A model the provider lists.")
@click.option("--width", type=int, default=1024, show_default=True)
@click.option("--height", type=int, default=1024, show_default=True)
@click.option("--steps", type=int, default=30, show_default=True)
@click.option("--cfg-scale", type=float, default=7.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="0 draws a random seed.")
@click.option("--negative-prompt", default="")
@click.option("--count", type=int, default=1, show_default=True,
              help="How many images, 1-8, made at once (image i uses seed + i).")
@click.option("--option", "options", multiple=True, callback=_key_value, metavar="KEY=VALUE",
              help="A model option (see /api/providers); may be given several times.")
@with_appcontext
def generate_command(prompt, provider, model, width, height, steps, cfg_scale, seed,
                     negative_prompt, count, options):
    """Generate images and print each record as JSON."""
    body = dict(prompt=prompt, negative_prompt=negative_prompt, provider=provider, model=model,
                width=width, height=height, steps=steps, cfg_scale=cfg_scale, seed=seed,
                count=count)
    body = {name: value for name, value in body.items() if value is not None}
    generation = service()
    chosen = generation.find_model(provider, model)
    body["options"] = chosen.options_from_text(options) if chosen else options
    try:
        params = validate(body)
        if params.count == 1:
            _echo_record(generation.generate(params, created_by="cli"))
            return
        with click.progressbar(length=params.count, label="Generating", file=sys.stderr) as bar:
            batch = generation.generate_batch(params, on_done=lambda index: bar.update(1),
                                              created_by="cli")
    except ValidationFailed as exc:
        messages = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}"
                             for e in exc.errors)
        raise click.ClickException(messages) from None
    except (ProviderError, StorageError) as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from None
    for record in batch.images:
        _echo_record(record)
    for problem in batch.errors:
        click.echo(f"image {problem.index} failed: {problem.error.code}: {problem.error.detail}",
                   err=True)
    if batch.errors:
        raise click.exceptions.Exit(1)


@click.group("images")
def images_group():
    """List, show, delete and verify stored images."""


@images_group.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--provider", default=None)
@with_appcontext
def list_command(limit, provider):
    """Newest records, one line each."""
    query = sa.select(Image).order_by(Image.created_at.desc(), Image.id.desc()).limit(limit)
    if provider:
        query = query.where(Image.provider == provider)
    for image in db.session.scalars(query):
        click.echo(f"{image.id:>6}  {image.created_at:%Y-%m-%d %H:%M}  {image.provider:<9} "
                   f"{image.width}x{image.height}  {image.prompt[:60]}")


def _get(image_id: int) -> Image:
    image = db.session.get(Image, image_id)
    if image is None:
        raise click.ClickException(f"Image {image_id} not found.")
    return image


@images_group.command("show")
@click.argument("image_id", type=int)
@with_appcontext
def show_command(image_id):
    """One record as JSON."""
    _echo_record(_get(image_id))


@images_group.command("delete")
@click.argument("image_id", type=int)
@with_appcontext
def delete_command(image_id):
    """Delete a record with its file and thumbnail."""
    service().delete(_get(image_id))
    click.echo(f"Deleted image {image_id}.")


@images_group.command("verify")
@click.option("--fix", is_flag=True, help="Delete orphan files and records whose file is gone.")
@with_appcontext
def verify_command(fix):
    """Report records whose file is missing and files that no record references."""
    store = service().store
    records = {image.filename: image for image in db.session.scalars(sa.select(Image))}
    try:
        files = set(store.files())
        thumbs = store.thumbnails()
        leftovers = store.leftovers()
    except StorageError as exc:
        raise click.ClickException(exc.detail) from None
    missing = [records[name] for name in sorted(set(records) - files)]
    orphans = sorted(files - set(records))
    known_thumbs = {store.thumb_key(image.id) for image in records.values()}
    orphan_thumbs = [key for key in thumbs if key not in known_thumbs]
    for image in missing:
        click.echo(f"missing file: record {image.id} -> {image.filename}")
    for name in orphans:
        click.echo(f"orphan file: {name}")
    for key in orphan_thumbs:
        click.echo(f"orphan thumbnail: {key}")
    for key in leftovers:
        click.echo(f"unfinished write: {key}")
    problems = len(missing) + len(orphans) + len(orphan_thumbs) + len(leftovers)
    if not problems:
        click.echo(f"OK: {len(records)} records, every file present, no orphans.")
        return
    if not fix:
        raise click.ClickException(f"{problems} problem(s) found; run with --fix to repair.")
    for image in missing:
        db.session.delete(image)
    db.session.commit()
    stale = [store.thumb_key(image.id) for image in missing] + orphans + orphan_thumbs + leftovers
    try:
        for key in stale:
            store.backend.delete(key)
    except StorageError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"Fixed {problems} problem(s).")


@click.command("usage")
@click.option("--since", default=None, help="An ISO date or time (UTC); everything when omitted.")
@click.option("--until", default=None, help="An ISO date (inclusive) or time (UTC).")
@click.option("--by", type=click.Choice(GROUPINGS), default="day", show_default=True)
@with_appcontext
def usage_command(since, until, by):
    """What generation has cost, as GET /api/usage reports it."""
    try:
        start = parse_time(since) if since else None
        end = parse_time(until, end=True) if until else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    report = spending().usage(start, end, by)
    rows = [(g["key"], str(g["images"]), dollars(g["cost"])) for g in report["groups"]]
    rows.append(("total", str(report["total"]["images"]), dollars(report["total"]["cost"])))
    widths = [max(len(row[i]) for row in [(by, "images", "cost"), *rows]) for i in range(3)]
    click.echo(f"{by:<{widths[0]}}  {'images':>{widths[1]}}  {'cost':>{widths[2]}}")
    for key, images, cost in rows:
        click.echo(f"{key:<{widths[0]}}  {images:>{widths[1]}}  {cost:>{widths[2]}}")
    budget = report["budget"]
    if budget["daily"] is not None:
        click.echo(f"today: {dollars(budget['spent_today'])} spent, "
                   f"{dollars(budget['left_today'])} left of {dollars(budget['daily'])} "
                   "(DAILY_BUDGET)")
    for token in budget.get("tokens", []):
        click.echo(f"today, token {token['name']}: {dollars(token['spent_today'])} spent, "
                   f"{dollars(token['left_today'])} left of {dollars(token['daily'])}")
