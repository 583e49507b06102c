"""Local fake servers of the Stability AI, Replicate and OpenAI HTTP APIs, for the test suite.

`from tests.fakes import FakeStability, FakeReplicate, FakeOpenAI`. The classes load on first use so that
`python -m tests.fakes.stability` (or `.replicate`) runs its module only once.
"""

_EXPORTS = {"FakeStability": "stability", "FakeReplicate": "replicate", "FakeOpenAI": "openai",
            "FakeServer": "server"}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
