"""The layers' docstrings: their examples run (as doctests) and every public layer documents its arguments."""
import doctest
import importlib
import inspect
import pkgutil

import keras
import pytest

import lstm_apps.layers

MODULES = sorted(f"lstm_apps.layers.{info.name}" for info in pkgutil.iter_modules(lstm_apps.layers.__path__))
PUBLIC = {name: getattr(lstm_apps.layers, name) for name in lstm_apps.layers.__all__}
LAYERS = sorted(name for name, value in PUBLIC.items()
                if inspect.isclass(value) and issubclass(value, keras.layers.Layer))
FUNCTIONS = sorted(name for name, value in PUBLIC.items() if inspect.isfunction(value))


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.attempted > 0, f"{module_name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {module_name} failed (see stdout)"


def test_every_public_layer_and_function_is_covered():
    assert LAYERS == ["AttentionPooling", "LSTMStack", "LogMelSpectrogram", "LuongAttention", "PerClipNormalization",
                      "ReversibleEmbedding", "SpecAugment"]
    assert FUNCTIONS == ["lengths_to_mask", "pad_right"]
    assert {PUBLIC[name].__module__ for name in LAYERS + FUNCTIONS} <= set(MODULES)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_docstring_has_args_and_example(name):
    doc = inspect.getdoc(PUBLIC[name])
    assert "\nArgs:\n" in doc and "\nExample:\n" in doc
    documented = doc.split("\nArgs:\n", 1)[1]
    for parameter in inspect.signature(PUBLIC[name].__init__).parameters.values():
        if parameter.name != "self":
            assert f"    {'**' if parameter.kind is parameter.VAR_KEYWORD else ''}{parameter.name}:" in documented, \
                f"{name}: constructor argument {parameter.name!r} is not under Args:"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_docstring_has_args_and_example(name):
    doc = inspect.getdoc(PUBLIC[name])
    assert "\nArgs:\n" in doc and "\nExample:\n" in doc
    for parameter in inspect.signature(PUBLIC[name]).parameters:
        assert f"    {parameter}:" in doc.split("\nArgs:\n", 1)[1], f"{name}: argument {parameter!r} is not under Args:"
