"""The tunable arguments of every catalogue method, as ``criterion.<name>`` config keys.

One declaration per argument: its name (the keyword argument of the method's model builder,
which passes it on to the loss or heads), its type, the range of values the paper's formula
allows, and what it means. The default is *not* declared here: it is the model builder's
own keyword default (:func:`selfsup.methods._base.Method.arg_defaults` reads it from the
signature), so the value a user gets without setting the key is the value a Python caller of
the builder gets. This module is torch-free, so configs are checked (at resolve time, by the
server too) without importing any method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from selfsup.errors import ConfigError, did_you_mean

__all__ = [
    "CATALOG_ARGS",
    "ArgValue",
    "MethodArg",
    "check_arg_values",
]

#: A checked argument value (``None`` only for nullable arguments).
ArgValue = float | int | bool | None


@dataclass(frozen=True)
class MethodArg:
    """One ``criterion.<name>`` key of a method.

    Attributes:
        name: Keyword argument of the method's model builder and config key.
        type: ``float``, ``int`` or ``bool``.
        description: What it sets, with the paper's value.
        ge, gt, le, lt: Bounds of the accepted range (None: unbounded).
        nullable: ``null`` is accepted (the builder then chooses, e.g. from the model size).
        attribute: Where the built model holds the value, for the contract test that checks
            it arrives: a dotted path from the model whose parts are attributes, mapping
            keys, indexes (digits) or ``len`` (the length of what precedes it); empty: an
            attribute named ``name`` on any submodule.
    """

    name: str
    type: Literal["float", "int", "bool"]
    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    nullable: bool = False
    attribute: str = ""

    def accepted(self) -> str:
        """What the key accepts, in words: ``"a float > 0 and <= 1"``."""
        article = "an" if self.type == "int" else "a"
        bounds = [
            f"{op} {_number(bound)}"
            for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if bound is not None
        ]
        text = f"{article} {self.type}" + (f" {' and '.join(bounds)}" if bounds else "")
        return text + (" or null" if self.nullable else "")

    def check(self, value: object, method: str) -> ArgValue:
        """``value`` as this argument's type, or a ConfigError naming key, value and range.

        An int is accepted for a float (YAML reads ``1`` as an int); a bool is never a number,
        and a float is an int only when whole (``1.0``), so ``2.5`` for an int is refused.
        """
        key = f"criterion.{self.name}"
        wrong = ConfigError(
            f"invalid value {value!r} for {key!r} of method={method}: expected {self.accepted()}"
        )
        if value is None:
            if self.nullable:
                return None
            raise wrong
        if self.type == "bool":
            if not isinstance(value, bool):
                raise wrong
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        if not math.isfinite(value):
            raise wrong
        number: float | int
        if self.type == "int":
            if isinstance(value, float) and not value.is_integer():
                raise wrong
            number = int(value)
        else:
            number = float(value)
        if (
            (self.ge is not None and number < self.ge)
            or (self.gt is not None and number <= self.gt)
            or (self.le is not None and number > self.le)
            or (self.lt is not None and number >= self.lt)
        ):
            raise wrong
        return number


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


def check_arg_values(
    method: str, args: tuple[MethodArg, ...], values: Mapping[str, object]
) -> dict[str, ArgValue]:
    """``values`` (``criterion.*`` keys beyond the typed ones) checked against the method's
    arguments: a key the method does not take is a ConfigError naming it, the method and the
    accepted keys with a did-you-mean; a wrong type or range names the value and the range."""
    by_name = {arg.name: arg for arg in args}
    checked: dict[str, ArgValue] = {}
    for key, value in values.items():
        if key not in by_name:
            takes = ", ".join(f"criterion.{name}" for name in by_name) or "no criterion keys"
            raise ConfigError(
                f"method={method} has no argument criterion.{key}"
                f"{did_you_mean(key, by_name)} (it takes {takes}); see docs/methods.md"
            )
        checked[key] = by_name[key].check(value, method)
    return checked


# Shared declarations (one per meaning, reused by the methods that take them).
_TEMPERATURE = MethodArg("temperature", "float", "temperature τ of the loss's softmax", gt=0)


def _queue(attribute: str) -> MethodArg:
    return MethodArg(
        "memory_bank_size",
        "int",
        "entries of the memory bank or queue of past embeddings (0: none)",
        ge=0,
        attribute=attribute,
    )


_VIC_WEIGHTS = (
    MethodArg("lambda_param", "float", "λ, weight of the invariance term (paper: 25)", ge=0),
    MethodArg("mu_param", "float", "μ, weight of the variance term (paper: 25)", ge=0),
    MethodArg("nu_param", "float", "ν, weight of the covariance term (paper: 1)", ge=0),
)
_MSN = (
    _TEMPERATURE,
    MethodArg("mask_ratio", "float", "fraction of the anchor view's patches dropped", ge=0, lt=1),
    MethodArg(
        "regularization_weight",
        "float",
        "weight of the mean-entropy maximisation (paper: 1)",
        ge=0,
        attribute="criterion.regularization_weight",
    ),
)
_IBOT = (
    MethodArg("koleo_weight", "float", "weight of the KoLeo spreading term (DINOv2: 0.1)", ge=0),
    MethodArg(
        "mask_probability",
        "float",
        "fraction of images whose global views are masked (paper: 0.5)",
        ge=0,
        le=1,
    ),
    MethodArg(
        "min_mask_ratio",
        "float",
        "smallest share of masked patches",
        ge=0,
        le=1,
        attribute="mask_ratio.0",
    ),
    MethodArg(
        "max_mask_ratio",
        "float",
        "largest share of masked patches",
        ge=0,
        le=1,
        attribute="mask_ratio.1",
    ),
)

#: Method name -> its tunable arguments. Catalogue methods only; a method registered with
#: ``register_method`` declares its own in ``Method.args``.
CATALOG_ARGS: dict[str, tuple[MethodArg, ...]] = {
    "simclr": (_TEMPERATURE, _queue("criterion.memory_bank.size")),
    "moco": (_TEMPERATURE, _queue("criterion.memory_bank.size")),
    "byol": (),
    "mocov3": (_TEMPERATURE,),
    "simsiam": (),
    "barlowtwins": (
        MethodArg(
            "lambda_param", "float", "λ, weight of the redundancy reduction (paper: 5e-3)", ge=0
        ),
    ),
    "vicreg": _VIC_WEIGHTS,
    "tico": (
        MethodArg("beta", "float", "β of the running covariance (paper: 0.9)", ge=0, le=1),
        MethodArg("rho", "float", "ρ, weight of the covariance contrast (paper: 20)", ge=0),
    ),
    "mmcr": (
        MethodArg("lmda", "float", "λ, weight of the local nuclear norms (paper: 5e-3)", ge=0),
    ),
    "hypersphere": (
        MethodArg("t", "float", "t of the uniformity term's Gaussian potential", gt=0),
        MethodArg("lam", "float", "λ, weight of the uniformity term", ge=0),
        MethodArg("alpha", "float", "α, exponent of the alignment distance (paper: 2)", gt=0),
    ),
    "directclr": (
        _TEMPERATURE,
        MethodArg(
            "d0",
            "int",
            "dimensions of the representation contrasted (null: a quarter of num_ftrs)",
            ge=1,
            nullable=True,
            attribute="d0",
        ),
    ),
    "wmse": (
        MethodArg(
            "eps",
            "float",
            "added to the covariance's diagonal before whitening",
            ge=0,
            le=1,
            attribute="criterion.eps",
        ),
    ),
    "dino": (
        MethodArg("teacher_temp", "float", "teacher temperature after warm-up (paper: 0.04)", gt=0),
        MethodArg(
            "warmup_teacher_temp", "float", "teacher temperature at the start (paper: 0.04)", gt=0
        ),
        MethodArg(
            "warmup_teacher_temp_epochs",
            "int",
            "epochs of the teacher temperature's linear warm-up (paper: 30)",
            ge=0,
        ),
        MethodArg("student_temp", "float", "student temperature (paper: 0.1)", gt=0),
        MethodArg(
            "center_momentum", "float", "momentum of the teacher's centre (paper: 0.9)", ge=0, le=1
        ),
    ),
    "nnclr": (_TEMPERATURE, _queue("memory_bank.size")),
    "swav": (
        _TEMPERATURE,
        MethodArg(
            "memory_bank_size",
            "int",
            "queue of past features per high-resolution view (paper: 3840; 0: none)",
            ge=0,
            attribute="queue_length",
        ),
        MethodArg("sinkhorn_epsilon", "float", "ε of the Sinkhorn-Knopp codes (paper: 0.05)", gt=0),
        MethodArg("sinkhorn_iterations", "int", "Sinkhorn-Knopp iterations (paper: 3)", ge=1),
    ),
    "dcl": (_TEMPERATURE,),
    "dclw": (_TEMPERATURE,),
    "fastsiam": (),
    "empssl": (
        MethodArg("tcr_eps", "float", "ε of the total coding rate (paper: 0.2)", gt=0),
        MethodArg("inv_coef", "float", "weight of the invariance term (paper: 200)", ge=0),
    ),
    "frossl": (
        MethodArg(
            "invariance_weight", "float", "weight of the invariance (MSE) term (paper: 1)", ge=0
        ),
    ),
    "smog": (
        _TEMPERATURE,
        MethodArg(
            "reset_interval",
            "int",
            "steps between re-initialisations of the group features (paper: 300)",
            ge=1,
        ),
    ),
    "vicregl": (
        *_VIC_WEIGHTS,
        MethodArg(
            "alpha",
            "float",
            "weight of the global loss against the local one (paper: 0.75)",
            ge=0,
            le=1,
        ),
    ),
    "densecl": (
        _TEMPERATURE,
        _queue("criterion.global_queue.size"),
        MethodArg(
            "lambda_",
            "float",
            "λ, weight of the dense loss against the global (paper: 0.5)",
            ge=0,
            le=1,
        ),
    ),
    "detcons": (_TEMPERATURE,),
    "detconb": (_TEMPERATURE,),
    "msn": _MSN,
    "pmsn": _MSN,
    "distillation": (_queue("criterion.queue_size"),),
    "ibot": _IBOT,
    "dinov2": _IBOT,
    "ijepa": (
        MethodArg(
            "predictor_depth",
            "int",
            "transformer blocks of the predictor",
            ge=1,
            attribute="predictor.blocks.len",
        ),
        MethodArg(
            "n_pred",
            "int",
            "target blocks predicted per image (paper: 4)",
            ge=1,
            attribute="mask_settings.n_pred",
        ),
        MethodArg(
            "min_keep",
            "int",
            "fewest patches any mask keeps",
            ge=1,
            attribute="mask_settings.min_keep",
        ),
    ),
    "aim": (
        MethodArg(
            "head_blocks",
            "int",
            "MLP blocks of the pixel prediction head",
            ge=1,
            attribute="head.blocks.len",
        ),
    ),
    "mae": (
        MethodArg("mask_ratio", "float", "fraction of patches masked (paper: 0.75)", gt=0, lt=1),
        MethodArg("norm_pix_loss", "bool", "regress per-patch normalised pixels (paper: true)"),
    ),
    "simmim": (
        MethodArg("mask_ratio", "float", "fraction of patches masked (paper: 0.6)", gt=0, lt=1),
    ),
}


def describe_method_args(prefix: str = "criterion.") -> str:
    """Help text of every catalogue method's arguments, one line per key: the method, the
    key (``prefix`` + name), what it accepts and what it sets (torch-free: the defaults,
    read from the model builders, are in docs/methods.md)."""
    rows = [
        (method, f"{prefix}{arg.name}", arg.accepted(), arg.description)
        for method, args in CATALOG_ARGS.items()
        for arg in args
    ]
    width = [max(len(row[i]) for row in rows) + 2 for i in range(3)]
    lines = [
        f"method arguments (pass as {prefix}<name>=value with method=<name>; unset: the "
        "method's default, listed in docs/methods.md):"
    ]
    lines += [f"  {m:<{width[0]}}{k:<{width[1]}}{a:<{width[2]}}{d}" for m, k, a, d in rows]
    return "\n".join(lines)
