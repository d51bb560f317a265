"""The suite language as pydantic v2 models: unknown keys are rejected, names use hyphens in YAML.

A suite file (``suites/*.yaml``)::

    suite: office-domain-shift        # optional, defaults to the file name
    data: office-synth                # a name (specs/datasets.yaml or a built-in) or an inline mapping
    source: amazon
    targets: [webcam, dslr]           # optional: every other domain
    train: default                    # a name (specs/training.yaml) or an inline recipe
    models: [resnet18, resnet50]      # names (specs/models.yaml or the zoo) or inline mappings
    variants: {}                      # compression chains; the uncompressed `baseline` is always there
    expect:
      - source-accuracy: {min: 0.9}
      - target-accuracy: {domains: [webcam], min: 0.4, confidence: 0.95}
      - drop-vs-source: {max: 0.5}

Resolution of names into definitions happens in :mod:`robustspec.spec.loader`; the models here describe
the *resolved* suite, so a resolved suite round-trips through ``model_dump(by_alias=True)``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_serializer,
    model_validator,
)

from .refs import Ref
from .text import shorten

__all__ = [
    "Strict",
    "MAX_SEED",
    "Flag",
    "Name",
    "DomainName",
    "DomainRef",
    "TargetDomainRef",
    "ModelRef",
    "VariantRef",
    "ExpectationBase",
    "RegressionSpec",
    "Fraction",
    "Probability",
    "Ratio",
    "parse_fraction",
    "parse_count",
    "Count",
    "DataParams",
    "SynthData",  # noqa: F822  (re-exported from robustspec.data by __getattr__)
    "FolderData",  # noqa: F822
    "DataSpec",
    "OptimizerSpec",
    "AugmentSpec",
    "ResourcesSpec",
    "TrainRecipe",
    "NormalizeSpec",
    "ModelSpec",
    "Suite",
    "BASELINE",
]

BASELINE = "baseline"

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=_NAME, max_length=64)]
#: A domain, or a derived one (``amazon+gaussian_noise@3``); the loader checks the parts against the dataset.
DomainName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+@-]*$", max_length=96)]
#: Names of things of the suite; the loader checks each against the suite (:mod:`robustspec.spec.refs`).
DomainRef = Annotated[DomainName, Ref("domain"), Field(description=Ref("domain").description)]
TargetDomainRef = Annotated[DomainName, Ref("target-domain"), Field(description=Ref("target-domain").description)]
ModelRef = Annotated[Name, Ref("model"), Field(description=Ref("model").description)]
VariantRef = Annotated[Name, Ref("variant"), Field(description=Ref("variant").description)]


def _hyphenate(name: str) -> str:
    return name.replace("_", "-")


class Strict(BaseModel):
    """Base of every suite model: unknown keys are errors; YAML keys are hyphenated field names."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=_hyphenate,
        populate_by_name=True,
        frozen=True,
        validate_default=True,
        # inf and nan (.inf, .nan, 1e309) are never a meaningful bound or parameter, and a gate with an
        # infinite bound cannot fail: every float of every suite model must be finite.
        allow_inf_nan=False,
        # Validators are built on first use: a validation run builds only the models its suites use.
        defer_build=True,
    )


# Each number is ``digits[.digits]`` or ``.digits``: one way to match, so a long run of digits that fails
# in the end is rejected in linear time (``[0-9]*\.?[0-9]+`` backtracks quadratically).
_FRACTION = re.compile(
    r"^\s*((?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+))?\s*(%?)\s*$"
)
_NOT_FINITE = "must be a finite number"


def _finite(number: float) -> float:
    if not math.isfinite(number):
        raise ValueError(_NOT_FINITE)
    return number


def parse_fraction(value: Any) -> Any:
    """Numbers, ``"4/255"`` and ``"90%"`` become floats by a regular expression; nothing is evaluated."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, (int, float)):
        try:
            return _finite(float(value))
        except OverflowError:  # an int beyond the float range
            raise ValueError(_NOT_FINITE) from None
    if isinstance(value, str):
        m = _FRACTION.match(value)
        if not m:
            raise ValueError(f"expected a number, a fraction like 4/255 or a percentage like 90%, got {shorten(value)}")
        num = _finite(float(m.group(1)))  # "1e309" reads as inf
        if m.group(2) is not None:
            den = _finite(float(m.group(2)))
            if den == 0:
                raise ValueError("division by zero")
            num /= den
        if m.group(3):
            num /= 100.0
        return num
    return value


def _no_bool(value: Any) -> Any:
    # YAML true/false must not pass as 1/0 where a number is expected.
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


Int = Annotated[int, Field(strict=True)]
#: Largest seed: torch.manual_seed takes 64-bit seeds; a bigger one would fail only when building.
MAX_SEED = 2**63 - 1
Real = Annotated[float, BeforeValidator(_no_bool)]
#: A YAML boolean (true/false); 1 and "yes" are not taken for one.
Flag = Annotated[bool, Field(strict=True)]
_COUNT = re.compile(r"^\s*((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*([kKmMgG]?)\s*$")
_COUNT_SCALE = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
#: Far above any network's parameter count; also keeps "1e999999999" from becoming a billion-digit int.
_MAX_COUNT = 10**15


def parse_count(value: Any) -> int:
    """A parameter count: ``1234``, ``"500k"``, ``"11.19M"``, ``"4.51e6"`` (regex and Decimal, never eval)."""
    if isinstance(value, bool):
        raise ValueError("expected a parameter count like 11.19M, 500k or 4510000, got a boolean")
    too_large = f"a parameter count must be at most 10^15, got {shorten(value)}"
    if isinstance(value, int):
        if value > _MAX_COUNT:
            raise ValueError(too_large)
        return value
    if isinstance(value, float):
        _finite(value)
        if value != int(value):
            raise ValueError(f"a parameter count must be a whole number, got {value!r}")
        if value > _MAX_COUNT:
            raise ValueError(too_large)
        return int(value)
    if isinstance(value, str):
        m = _COUNT.match(value)
        if m:
            try:
                written = Decimal(m.group(1))
                # Compared as Decimals, the exponent first: no huge int and no Decimal overflow ("1e99999999").
                if written.adjusted() > 15:
                    raise ValueError(too_large)
                exact = written * _COUNT_SCALE[m.group(2).lower()]
            except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
                exact = None
            if exact is not None:
                if exact > _MAX_COUNT:
                    raise ValueError(too_large)
                if exact != exact.to_integral_value():
                    raise ValueError(
                        f"a parameter count must be a whole number, {shorten(value)} is {exact.normalize()}"
                    )
                return int(exact)
        raise ValueError(f"expected a parameter count like 11.19M, 500k or 4510000, got {shorten(value)}")
    raise ValueError(f"expected a parameter count like 11.19M, 500k or 4510000, got {type(value).__name__}")


def _number_or_text(number: Any, parse: Any, pattern: str, example: str) -> Any:
    """``number``, also written as text that ``parse`` reads; the JSON Schema shows both forms and the bounds."""
    text = Annotated[str, Field(pattern=pattern, description=f"as text, like {example}")]
    return Annotated[number, BeforeValidator(parse, json_schema_input_type=number | text)]


#: A parameter count: an int, or a string like "11.19M", "500k", "4.51e6".
Count = _number_or_text(Annotated[int, Field(gt=0)], parse_count, _COUNT.pattern, "11.19M or 500k")
Fraction = _number_or_text(float, parse_fraction, _FRACTION.pattern, "4/255 or 90%")
Probability = _number_or_text(
    Annotated[float, Field(ge=0.0, le=1.0)], parse_fraction, _FRACTION.pattern, "4/255 or 90%"
)
#: Strictly between 0 and 1 (a ratio, a sparsity, a confidence level).
Ratio = _number_or_text(Annotated[float, Field(gt=0.0, lt=1.0)], parse_fraction, _FRACTION.pattern, "0.5 or 95%")
Confidence = Ratio


# --- data ----------------------------------------------------------------------------------------------
# Each dataset's parameter model lives with its dataset (robustspec.data: SynthData, FolderData, ...) and
# the dataset registry builds the union; a suite's ``data`` is any registered dataset's parameters.


class DataParams(Strict):
    """Base of every dataset's parameters: a registered dataset's ``Params`` subclasses it."""


def _validate_data(value: Any) -> Any:
    from ..data.base import data_adapter, dataset_name

    if isinstance(value, DataParams):
        dataset_name(value)  # a ValueError unless a registered dataset's Params
        return value
    return data_adapter().validate_python(value)


def _same(value: Any) -> Any:
    return value


class DataSpec:
    """Any registered dataset's parameters: the tagged union of the ``DATASETS`` registry's ``Params``.

    A pydantic type built on first use (validation, JSON Schema), so that importing the schema imports
    no dataset and loads no plugin. Serialised as the dataset's own model.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            _validate_data,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _same, return_schema=core_schema.any_schema()
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> Any:
        from ..data.base import data_adapter

        return handler(data_adapter().core_schema)


def __getattr__(name: str) -> Any:
    # The built-in datasets' parameter models, re-exported from their datasets (imported on first use).
    if name == "SynthData":
        from ..data.synthetic import SynthData

        return SynthData
    if name == "FolderData":
        from ..data.imagefolder import FolderData

        return FolderData
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- training ------------------------------------------------------------------------------------------


class OptimizerSpec(Strict):
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: Annotated[Real, Field(gt=0.0, le=10.0)] = 0.002
    momentum: Annotated[Real, Field(ge=0.0, lt=1.0)] = 0.9
    weight_decay: Annotated[Real, Field(ge=0.0, le=1.0)] = 0.05


def _crop_pad(value: Any) -> Any:
    """Pixels as an integer; a share of the image's side as a fraction below 1 or a percentage."""
    if isinstance(value, bool):
        raise ValueError("expected pixels (an integer) or a share of the image size (10%), got a boolean")
    if isinstance(value, str) or (isinstance(value, float) and not isinstance(value, bool)):
        share = parse_fraction(value)
        if not 0.0 <= share < 1.0:
            raise ValueError(
                f"a share of the image size must be at least 0 and below 1 (100%), got {shorten(value)}; "
                "whole pixels are an integer"
            )
        return share
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 64:
        raise ValueError(f"pixels must be between 0 and 64, got {value}")
    return value


#: A translation: whole pixels (``3``), or a share of the image's side (``10%``, ``0.1``).
CropPad = Annotated[
    Int | float,
    BeforeValidator(
        _crop_pad,
        json_schema_input_type=Annotated[int, Field(ge=0, le=64)]
        | Annotated[float, Field(ge=0.0, lt=1.0)]
        | Annotated[str, Field(pattern=_FRACTION.pattern, description="as text, like 10%")],
    ),
]


class AugmentSpec(Strict):
    crop_pad: CropPad = Field(
        3,
        description="random translation by up to this many pixels (an integer, at most 64) or this share of the "
        "image's side (10%, 0.1)",
    )
    flip: Flag = True
    jitter: Annotated[Real, Field(ge=0.0, le=1.0)] = 0.4


class ResourcesSpec(Strict):
    """What one build asks of a Ray cluster (``--robustspec-executor ray``): it decides where a build runs,
    never what it builds, so it is no part of any artifact's key."""

    cpus: Annotated[Real, Field(gt=0, le=1024)] | None = Field(
        None, description="CPUs a build reserves on the cluster (default: the build's torch threads)"
    )
    gpus: Annotated[Real, Field(ge=0, le=64)] | None = Field(
        None, description="GPUs a build reserves on the cluster (default 0); a fraction shares one"
    )


class TrainRecipe(Strict):
    """Supervised training on the source domain's train split."""

    epochs: Int = Field(10, ge=0, le=1000)
    batch_size: Int = Field(64, ge=1, le=4096)
    optimizer: OptimizerSpec = OptimizerSpec()
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    augment: AugmentSpec = AugmentSpec()
    label_smoothing: Annotated[Real, Field(ge=0.0, lt=1.0)] = 0.0
    seed: Int = Field(0, ge=0, le=MAX_SEED)
    class_weights: Literal["none", "balanced"] = Field(
        "none",
        description="balanced: weigh each training image's cross-entropy by n / (K * n_k), the inverse of its "
        "class's frequency in the source's train split (K: the classes it has, n_k: the images of the class), "
        "so every class counts alike; also in distillation, CORAL and every fine-tuning that uses the recipe",
    )
    resources: ResourcesSpec | None = Field(
        None,
        description="what each build of the suite's models asks of a Ray cluster (--robustspec-executor ray): "
        "{cpus: N, gpus: N}; no part of any artifact's key",
    )

    @model_serializer(mode="wrap")
    def _added_fields_at_default_are_left_out(self, handler: Any) -> Any:
        # A model's content key hashes the dumped recipe: a field added later must not change the key of a
        # recipe that does not use it (as lowrank's pointwise).
        data = handler(self)
        if isinstance(data, dict) and self.class_weights == "none":
            data.pop("class_weights", None)
            data.pop("class-weights", None)
        if isinstance(data, dict) and self.resources is None:
            data.pop("resources", None)
        return data


# --- models --------------------------------------------------------------------------------------------


class NormalizeSpec(Strict):
    mean: tuple[Real, Real, Real] = (0.485, 0.456, 0.406)
    std: tuple[Annotated[Real, Field(gt=0)], Annotated[Real, Field(gt=0)], Annotated[Real, Field(gt=0)]] = (
        0.229,
        0.224,
        0.225,
    )


#: ``normalize:`` presets: ImageNet's statistics (what torchvision's pretrained weights expect), and
#: pixels in [0, 1] as they are.
NORMALIZE_PRESETS: dict[str, dict[str, tuple[float, float, float]]] = {
    "imagenet": {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
    "none": {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)},
}


def _normalize_preset(value: Any) -> Any:
    if isinstance(value, str):
        if value not in NORMALIZE_PRESETS:
            raise ValueError(
                f"unknown normalisation {shorten(value)}; expected {' or '.join(NORMALIZE_PRESETS)} or {{mean, std}}"
            )
        return NORMALIZE_PRESETS[value]
    return value


class ModelSpec(Strict):
    """One model of a suite: an architecture, optional local weights, optional training override."""

    name: Name
    arch: str = Field(
        min_length=1, description="zoo name (resnet18 ... resnet152, resnet10-mini) or package.module:function"
    )
    params: dict[str, int | float | str | bool | list[int]] = Field(default_factory=dict)
    weights: str | None = Field(
        None,
        description="pretrained weights, never downloaded: a local state-dict file (relative to this file, loaded "
        "with weights_only=True) or a torchvision enum like ResNet50_Weights.IMAGENET1K_V2 (the file torchvision "
        "caches under TORCH_HOME); a classifier head of another size is replaced and trained for the data's classes",
    )
    normalize: Annotated[
        NormalizeSpec,
        BeforeValidator(_normalize_preset, json_schema_input_type=Literal["imagenet", "none"] | NormalizeSpec),
    ] = Field(
        NormalizeSpec(), description="what the network expects: imagenet (the default), none ([0, 1]) or {mean, std}"
    )
    train: TrainRecipe | None = None
    variants: dict[Name, Any] = Field(default_factory=dict, description="compression variants of this model only")


# --- expectations (parameter models live with each expectation kind) ------------------------------------


class RegressionSpec(Strict):
    """How far an item's measured value may move the wrong way against a saved baseline (``--robustspec-baseline``).

    ``max-drop`` is absolute for values within [-1, 1] (accuracies, drops) and relative to the baseline value
    beyond (parameter counts, bytes): the allowed move is ``max-drop * max(1, |baseline|)``. With
    ``confidence``, a move beyond that regresses only when the paired interval (Newcombe) of the move,
    from both runs' per-image outcomes, lies beyond zero: the drop is more than the test images' noise.
    """

    max_drop: Probability = 0.02
    confidence: Confidence | None = Field(
        None,
        description="also require the paired interval of the move at this level to exclude 0 (needs per-image "
        "outcomes: accuracies and robust accuracies); default: the tolerance alone decides",
    )


class ExpectationBase(Strict):
    """Fields every expectation accepts."""

    models: list[ModelRef] | None = Field(None, description="only these models (default: all)")
    variants: list[VariantRef] | None = Field(None, description="only these variants (default: all, baseline included)")
    confidence: Confidence | None = Field(
        None, description="gate on the Wilson interval at this level instead of the point estimate"
    )
    regression: RegressionSpec | None = Field(
        None, description="tolerance against a saved baseline (default: --robustspec-regression-tolerance)"
    )
    severity: Literal["fail", "warn"] = Field(
        "fail", description="warn: a failed gate or a regression is reported (a warning, WARN) without failing"
    )


# --- the suite -----------------------------------------------------------------------------------------


class Suite(Strict):
    """A resolved suite: every name has been replaced by its definition."""

    suite: Name
    data: DataSpec
    source: Name
    targets: list[DomainName] = Field(default_factory=list)
    train: TrainRecipe = TrainRecipe()
    models: list[ModelSpec] = Field(min_length=1)
    variants: dict[Name, Any] = Field(default_factory=dict, description="compression variants of every model")
    expect: list[Any] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_models(self) -> Suite:
        seen: set[str] = set()
        for m in self.models:
            if m.name in seen:
                raise ValueError(f"model name {m.name!r} appears twice")
            seen.add(m.name)
        if BASELINE in self.variants:
            raise ValueError(f"'{BASELINE}' is the uncompressed model and cannot be redefined as a variant")
        return self
