"""The generation service: whatever fails, nothing is left behind."""

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.generation import service
from app.models import Image
from app.params import GenerationParams, ValidationFailed
from app.providers.base import GenerationResult, Model, Provider, UpstreamError
from tests.conftest import files_in
from tests.images import png_bytes


class CannedProvider(Provider):
    """A provider that answers with the bytes it was given, recording what it was asked."""

    name = "canned"
    label = "Canned"

    def __init__(self, data: bytes, seed: int | None = None):
        super().__init__({})
        self.data, self.seed, self.requests = data, seed, []

    @property
    def models(self):
        return [Model("sd-like", "SD-like", honours=frozenset({"width", "height"}),
                      limits={"cfg_scale": (1, 10)}),
                Model("strict", "Strict", limits={"cfg_scale": (1, 10)})]

    def generate(self, request):
        self.requests.append(request)
        return GenerationResult(self.data, self.seed or request.seed)


@pytest.fixture
def use(app):
    def install(provider):
        service_ = app.extensions["generation"]
        service_.providers[provider.name] = provider
        return provider

    return install


def count(app):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Image))


def run(app, **fields):
    with app.app_context():
        return service().generate(GenerationParams(**{"prompt": "p", **fields})).to_dict()


def test_seed_zero_is_replaced_by_a_real_one_that_is_sent_and_kept(app, use):
    provider = use(CannedProvider(png_bytes()))
    record = run(app, provider="canned", model="strict", seed=0)
    assert record["seed"] == provider.requests[0].seed != 0
    assert record["requested"]["seed"] == 0


def test_provider_reported_seed_wins(app, use):
    use(CannedProvider(png_bytes(), seed=31337))
    assert run(app, provider="canned", model="strict", seed=5)["seed"] == 31337


def test_ignored_parameters_are_named_and_not_sent(app, use):
    provider = use(CannedProvider(png_bytes()))
    record = run(app, provider="canned", model="sd-like", negative_prompt="fog")
    assert record["ignored"] == ["negative_prompt", "steps", "cfg_scale"]
    assert provider.requests[0].negative_prompt == ""
    quiet = run(app, provider="canned", model="sd-like")
    assert quiet["ignored"] == ["steps", "cfg_scale"]


def test_model_range_is_422_naming_the_range_and_nothing_is_called(app, use):
    provider = use(CannedProvider(png_bytes()))
    with pytest.raises(ValidationFailed) as caught:
        run(app, provider="canned", model="strict", cfg_scale=15)
    assert caught.value.errors[0]["loc"] == ["body", "cfg_scale"]
    assert "between 1 and 10" in caught.value.errors[0]["msg"]
    assert provider.requests == []
    # a model that ignores cfg_scale does not hold it to a range
    assert run(app, provider="canned", model="sd-like", cfg_scale=15)["ignored"][-1] == "cfg_scale"


def test_unusable_image_is_502_and_leaves_nothing(app, use, images_dir):
    use(CannedProvider(b"<html>oops</html>"))
    with pytest.raises(UpstreamError, match="unusable image"):
        run(app, provider="canned", model="strict")
    assert files_in(images_dir) == [] and count(app) == 0


def test_failed_commit_leaves_no_file(app, use, images_dir, monkeypatch):
    use(CannedProvider(png_bytes()))

    def fail():
        raise sa.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))

    with app.app_context():
        monkeypatch.setattr(db.session, "commit", fail)
        with pytest.raises(sa.exc.OperationalError):
            service().generate(GenerationParams(prompt="p", provider="canned", model="strict"))
    assert files_in(images_dir) == []
    assert count(app) == 0


def test_records_store_the_real_size_beside_the_requested_one(app, use):
    use(CannedProvider(png_bytes(832, 1216)))
    record = run(app, provider="canned", model="sd-like", width=768, height=1344)
    assert (record["width"], record["height"]) == (832, 1216)
    assert (record["requested"]["width"], record["requested"]["height"]) == (768, 1344)
