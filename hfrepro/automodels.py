"""hfrepro's own model classes, found by transformers' Auto classes after `import hfrepro`.

    import hfrepro                                              # cheap: imports neither torch nor transformers
    from transformers import AutoModel, AutoModelForCausalLM
    AutoModel.from_pretrained("runs/seq2seq/rnn_attention")     # GRU seq2seq with attention (hfrepro-gru-seq2seq)
    AutoModelForCausalLM.from_pretrained("runs/lstm")           # LSTM LM (hfrepro-lstm)

The two models the ecosystem lacks are ordinary `PreTrainedModel`s saved as safetensors with a config.json whose
`model_type` names them. Their modules register them with `AutoConfig.register` / `AutoModel*.register` when
imported; what this module adds is *when*: the first time transformers looks up one of the model types below
(`AutoConfig`, `AutoModel*.from_pretrained`, `pipeline`, ...), its module is imported and registers itself. No
`trust_remote_code` is involved, and `hfrepro --help` stays fast because nothing heavy loads before that moment.

How: `install()` (called by `import hfrepro`) waits for transformers' `configuration_auto` module to be imported
(at once if it already is), then lets its `CONFIG_MAPPING` import the registering module on a lookup of one of
hfrepro's model types. A stage that adds a model class adds a line to `MODEL_MODULES` (the module, named by a
string as `hfrepro.cli` names command modules: it lives in a stage, above this layer).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import threading
import warnings

# model_type -> the module that defines the classes and registers them with the Auto classes when imported
MODEL_MODULES = {
    "hfrepro-lstm": "hfrepro.lm.lstm",
    "hfrepro-gru-seq2seq": "hfrepro.seq2seq.rnn",
}
# model_type -> the Auto class its module registers the model with (what a card's "How to load" uses)
AUTO_CLASSES = {
    "hfrepro-lstm": "AutoModelForCausalLM",
    "hfrepro-gru-seq2seq": "AutoModel",
}

_TARGET = "transformers.models.auto.configuration_auto"
_lock = threading.RLock()


def ensure_registered(model_type: object) -> bool:
    """Import the module that registers `model_type` (if it is one of hfrepro's). True if it is registered."""
    module = MODEL_MODULES.get(model_type) if isinstance(model_type, str) else None
    if module is None:
        return False
    with _lock:
        if module not in sys.modules:
            try:
                importlib.import_module(module)
            except Exception as e:  # noqa: BLE001 - a broken install must not break transformers for others
                warnings.warn(f"hfrepro could not register model type {model_type!r} ({module}): "
                              f"{type(e).__name__}: {e}", stacklevel=3)
                return False
    return True


def _patch(configuration_auto) -> None:
    """Make `CONFIG_MAPPING` import hfrepro's registering module on a lookup of one of its model types."""
    mapping = configuration_auto.CONFIG_MAPPING
    base = type(mapping)
    if getattr(base, "_hfrepro", False):
        return

    class WithHfreproModels(base):  # the same object, one more behaviour
        _hfrepro = True

        def __getitem__(self, key):
            ensure_registered(key)
            return super().__getitem__(key)

        def __contains__(self, item) -> bool:
            ensure_registered(item)
            return super().__contains__(item)

    mapping.__class__ = WithHfreproModels


class _Loader(importlib.abc.Loader):
    """Runs the real loader of configuration_auto, then patches the module."""

    def __init__(self, real):
        self.real = real

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module) -> None:
        self.real.exec_module(module)
        _patch(module)

    def __getattr__(self, name):  # get_source, get_code, ... for tracebacks and inspect
        return getattr(self.real, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)  # once is enough; let the other finders find the real module
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Arrange for hfrepro's model types to be found by the Auto classes (idempotent, costs nothing now)."""
    module = sys.modules.get(_TARGET)
    if module is not None and hasattr(module, "CONFIG_MAPPING"):
        _patch(module)
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
