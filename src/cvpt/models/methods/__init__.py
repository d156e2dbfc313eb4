"""The tuning methods, one module each, registered here in the order tables list them (the
paper's Table 1, then the others). A new method is one module and one line below
(docs/models.md, *Add a method*)."""

from cvpt.models.methods import adaptformer, cvpt, full, linear, lora, vpt
from cvpt.models.methods.base import (
    TuningMethod,
    TuningOptions,
    full_options,
    get_method,
    list_methods,
    make_options,
    methods_for,
    register_method,
    saved_options,
)

register_method(cvpt.CVPT)
register_method(linear.Linear)
register_method(vpt.VPT)
register_method(adaptformer.AdaptFormer)
register_method(full.Full)
register_method(lora.LoRA)

__all__ = [
    "TuningMethod",
    "TuningOptions",
    "full_options",
    "get_method",
    "list_methods",
    "make_options",
    "methods_for",
    "register_method",
    "saved_options",
]
