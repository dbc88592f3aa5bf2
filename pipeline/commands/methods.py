"""``stfcube methods``: the fusion methods, their pair rules, inputs and parameters."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from pipeline.commands._console import console


def as_text(value: object) -> str:
    """A parameter value as it is written after ``-p KEY=`` (``-100,10000``, ``true``)."""
    if isinstance(value, tuple):
        return ",".join(as_text(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def methods_command(
    name: Annotated[
        str | None, typer.Argument(help="One method to describe in full (default: all).")
    ] = None,
) -> None:
    """List the fusion methods with their parameters, defaults, units and valid ranges.

    Examples:

      stfcube methods

      stfcube methods starfm
    """
    from pipeline.engine.methods.registry import available_methods, get_method

    screen = console()
    for method_name in [name] if name else available_methods():
        method = get_method(method_name)
        defaults = method.make_params()
        spec = method.inputs(defaults)
        pairs = f"{method.min_pairs}..{method.max_pairs or 'any'}"
        native = f", native coarse grid ({', '.join(sorted(spec.native))})" if spec.native else ""
        layers = "".join(f", {layer.name}" for layer in method.output_layers(defaults))
        screen.print(f"[bold]{method.name}[/bold]: {method.summary}", highlight=False)
        screen.print(
            f"  pairs {pairs} (default rule {method.default_pairs!r}); devices "
            f"{', '.join(sorted(method.devices))}; halo {method.halo(defaults)} px{native}; "
            f"layers: fused{layers}",
            highlight=False,
        )
        for field in dataclasses.fields(defaults):
            doc = method.parameter_docs[field.name]
            screen.print(
                f"  -p {field.name}={as_text(getattr(defaults, field.name))}  [{doc.units}; "
                f"{doc.valid}]  {doc.help}",
                highlight=False,
                markup=False,
            )
