"""``torch.compile`` as an option (``model.compile``) for training and embedding.

A module is compiled *in place*: its ``__call__`` goes through :func:`torch.compile` while
the module object, its attributes and so its ``state_dict`` keys stay what they were.
``torch.compile(module)`` instead returns a wrapper whose keys carry an ``_orig_mod.``
prefix, and checkpoints written through it would not load into an uncompiled model.

Shapes are compiled statically (``dynamic=False``): each new input shape (the last, smaller
batch of an epoch or of an embedding pass; DINO's global and local crops) costs one more
compilation, of the same order as the first, instead of a switch to shape-generic kernels
that would then serve every batch. A compiled module that is deep-copied or pickled (a
momentum copy made later, a Ray actor, ``ddp_spawn``) arrives uncompiled rather than calling
the original module's forward.

Compilation happens on the first call, so that is where its failures surface (no C++
compiler for inductor's CPU kernels, an operation the backend cannot lower); they become a
:class:`~selfsup.errors.ConfigError` that names ``model.compile`` and says to turn it off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from selfsup.errors import ConfigError

logger = logging.getLogger(__name__)

#: The config key that turns compilation on, named in every error.
COMPILE_KEY = "model.compile"

#: The ``torch.compile`` backend used when none is given: inductor generates fused C++ kernels
#: on the CPU and Triton kernels on a GPU. Read at each call, so tests can set ``"aot_eager"``
#: (the same tracing, no code generation) to prove the plumbing in a fraction of the time.
DEFAULT_BACKEND = "inductor"

Backend = str | Callable[..., Any]
"""A ``torch.compile`` backend: a registered name or a callable (graph, inputs) -> callable."""

#: Submodules of a method's model that :func:`compile_method_model` compiles: the trained
#: backbone and, where the method has one, its momentum copy (a forward per step as well).
BACKBONE_ATTRIBUTES = ("backbone", "backbone_momentum")


def _turn_off_hint(what: str) -> str:
    return f"set {COMPILE_KEY}=false to run {what} without torch.compile"


def check_compiler(backend: Backend, *, what: str) -> None:
    """Fail early, before any data is read, when ``backend`` is inductor and no C++ compiler
    is found (inductor builds its CPU kernels and wrapper code with one; ``$CXX`` or g++).

    Raises:
        ConfigError: naming ``model.compile``, the compiler looked for, and the way out.
    """
    if backend != "inductor":
        return
    from torch._inductor import config as inductor_config
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception as exc:  # InvalidCxxCompiler or an OS error running `<cxx> --version`
        raise ConfigError(
            f"{COMPILE_KEY}=true needs a C++ compiler for torch.compile's inductor backend, but "
            f"none was found (looked for {inductor_config.cpp.cxx} and $CXX: {exc}); install "
            f"g++ or point $CXX at one, or {_turn_off_hint(what)}"
        ) from exc


def _is_compile_failure(exc: BaseException) -> bool:
    """True for the exceptions of a backend that could not compile a traced graph (not for
    an error of the model itself, which dynamo re-raises as it is)."""
    from torch._dynamo.exc import BackendCompilerFailed
    from torch._inductor.exc import CppCompileError, InductorError, InvalidCxxCompiler

    return isinstance(
        exc, BackendCompilerFailed | InductorError | InvalidCxxCompiler | CppCompileError
    )


def _uncompiled() -> None:
    """What a pickled :class:`_CompiledCall` unpickles to: no compiled call (eager)."""
    return None


class _CompiledCall:
    """The compiled ``__call__`` of one module, with compile failures as a ConfigError.

    Stored as the module's ``_compiled_call_impl`` (what :meth:`torch.nn.Module.compile`
    sets); a deep copy or an unpickled copy of the module gets ``None`` there and runs eager,
    since this object is bound to the original module.
    """

    def __init__(
        self, module: nn.Module, *, what: str, backend: Backend, dynamic: bool, pad_batches: bool
    ) -> None:
        self._what = what
        self._module = module
        self._pad_batches = pad_batches
        #: Shape of the first eval-mode batch: smaller ones with the same trailing shape are
        #: padded to it (``pad_batches``).
        self._full: torch.Size | None = None
        self._compiled = torch.compile(module._call_impl, backend=backend, dynamic=dynamic)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._pad_batches and not self._module.training and len(args) == 1 and not kwargs:
            x = args[0]
            if isinstance(x, torch.Tensor) and x.dim() >= 1:
                return self._padded_call(x)
        return self._call(*args, **kwargs)

    def _padded_call(self, x: torch.Tensor) -> Any:
        """An eval-mode batch (B, ...) -> the output for its B samples, computed on a batch
        padded to the first batch's size when it is smaller (a last batch), so it reuses
        that compiled graph: in eval mode every sample's output depends on itself alone."""
        full = self._full
        if full is None:
            self._full = x.shape
        elif x.shape[1:] == full[1:] and 0 < len(x) < full[0]:
            n = len(x)
            # Repeats of the last sample (finite, like the real ones), in x's memory layout
            # (a stride change would be a new graph too).
            padded = torch.cat([x, x[-1:].expand(full[0] - n, *x.shape[1:])])
            if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
                padded = padded.contiguous(memory_format=torch.channels_last)
            out = self._call(padded)
            if isinstance(out, torch.Tensor) and out.dim() >= 1 and len(out) == full[0]:
                return out[:n]
            return self._call(x)  # not one row per sample: compile for this shape instead
        return self._call(x)

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._compiled(*args, **kwargs)
        except Exception as exc:
            if not _is_compile_failure(exc):
                raise
            raise ConfigError(
                f"{COMPILE_KEY}=true: torch.compile could not compile {self._what} "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}); "
                f"{_turn_off_hint(self._what)}"
            ) from exc

    def __deepcopy__(self, memo: dict[int, Any]) -> None:
        return None

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _uncompiled, ()


def is_compiled(module: nn.Module) -> bool:
    """True when ``module``'s calls go through :func:`compile_in_place`."""
    return isinstance(getattr(module, "_compiled_call_impl", None), _CompiledCall)


def compile_in_place(
    module: nn.Module,
    *,
    what: str,
    backend: Backend | None = None,
    dynamic: bool = False,
    pad_batches: bool = False,
) -> nn.Module:
    """Compile ``module``'s ``__call__`` with :func:`torch.compile` and return ``module``.

    The state dict keeps its plain keys (no ``_orig_mod.`` prefix). ``what`` names the module
    in errors (e.g. ``"the backbone"``); ``backend`` defaults to :data:`DEFAULT_BACKEND`.
    Compilation itself runs at the first call. ``pad_batches`` (for embedding): in eval mode,
    a batch smaller than the first one (the last batch of a pass) is padded to its size and
    reuses its compiled graph instead of paying a compilation of its own.

    Raises:
        ConfigError: when inductor has no C++ compiler (here), or when compiling fails (at
            the first call); both name ``model.compile``.
    """
    chosen = DEFAULT_BACKEND if backend is None else backend
    check_compiler(chosen, what=what)
    module._compiled_call_impl = _CompiledCall(
        module, what=what, backend=chosen, dynamic=dynamic, pad_batches=pad_batches
    )
    return module


def compile_method_model(
    model: nn.Module,
    enabled: bool,
    *,
    what: str,
    backend: Backend | None = None,
    pad_batches: bool = False,
) -> nn.Module:
    """Compile the backbones of a method's model in place when ``enabled`` and return it.

    The backbone (images (B, C, H, W) -> embeddings (B, num_ftrs)) is where nearly all of
    the compute of training and embedding is; heads and losses stay eager (small, and some
    hold Python-side state such as queues). A method's momentum backbone is compiled too.
    Attributes that are not modules are skipped: a model without a backbone is left as is.
    ``pad_batches``: see :func:`compile_in_place` (embedding passes it).
    """
    if not enabled:
        return model
    compiled = []
    for name in BACKBONE_ATTRIBUTES:
        part = getattr(model, name, None)
        if isinstance(part, nn.Module) and not is_compiled(part):
            compile_in_place(
                part, what=f"{what}'s {name}", backend=backend, pad_batches=pad_batches
            )
            compiled.append(name)
    logger.info(
        "%s=true: compiling %s of %s with torch.compile (backend %s) on the first batch",
        COMPILE_KEY,
        ", ".join(compiled) or "nothing (no backbone)",
        what,
        DEFAULT_BACKEND if backend is None else backend,
    )
    return model
