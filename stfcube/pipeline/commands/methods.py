"""``stfcube methods``: the fusion methods, their pair rules, inputs and parameters."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stfcube.pipeline.commands._console import console
from stfcube.pipeline.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from stfcube.pipeline.engine.methods.base import FusionMethod


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
    from stfcube.pipeline.engine.methods.registry import available_methods, get_method

    screen = console()
    for method_name in [name] if name else available_methods():
        method = get_method(method_name)
        screen.print(f"[bold]{method.name}[/bold]: {method.summary}", highlight=False)
        try:
            defaults = method.make_params()
        except ConfigError as exc:  # a method that needs an input to describe itself (a model)
            screen.print(f"  pairs, halo and layers depend on its input: {exc}", highlight=False)
            _print_parameters(screen, method, method.params_type())
            continue
        spec = method.inputs(defaults)
        pairs = f"{method.min_pairs}..{method.max_pairs or 'any'}"
        native = f", native coarse grid ({', '.join(sorted(spec.native))})" if spec.native else ""
        layers = "".join(f", {layer.name}" for layer in method.output_layers(defaults))
        screen.print(
            f"  pairs {pairs} (default rule {method.default_pairs!r}); devices "
            f"{', '.join(sorted(method.devices))}; halo {method.halo(defaults)} px{native}; "
            f"layers: fused{layers}",
            highlight=False,
        )
        _print_parameters(screen, method, defaults)


def _print_parameters(screen: Console, method: FusionMethod[Any], values: Any) -> None:
    """One line per parameter: its value, units, valid range and meaning."""
    for field in dataclasses.fields(values):
        doc = method.parameter_docs[field.name]
        screen.print(
            f"  -p {field.name}={as_text(getattr(values, field.name))}  [{doc.units}; "
            f"{doc.valid}]  {doc.help}",
            highlight=False,
            markup=False,
        )
