"""``stfcube train``: train a learned fusion model on a cube's own pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stfcube.pipeline.commands._console import console
from stfcube.pipeline.commands._progress import progress_bar


def train_command(
    cube: Annotated[Path, typer.Argument(exists=True, help="Input cube (stfcube ingest).")],
    model: Annotated[str, typer.Option(help="edcstfn, dcstfn, stfdcnn or ganstfm.")] = "edcstfn",
    out: Annotated[Path, typer.Option(help="Model directory (created, or resumed).")] = Path(
        "model"
    ),
    epochs: Annotated[int, typer.Option(help="Most epochs.")] = 30,
    steps: Annotated[int, typer.Option(help="Batches per epoch.")] = 50,
    batch: Annotated[int, typer.Option(help="Patches per batch.")] = 8,
    patch: Annotated[int, typer.Option(help="Patch edge, fine px.")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    patience: Annotated[int, typer.Option(help="Epochs without improvement before stop.")] = 5,
    pairs: Annotated[int, typer.Option(help="References per sample (2: EDCSTFN).")] = 1,
    validation_fraction: Annotated[float, typer.Option(help="Share of held-out dates.")] = 0.2,
    validation_size: Annotated[int, typer.Option(help="Validation crop edge, fine px.")] = 256,
    autoencoder_steps: Annotated[int, typer.Option(help="EDCSTFN autoencoder batches.")] = 100,
    ms_ssim: Annotated[str, typer.Option(help="standard or authors (EDCSTFN loss).")] = "standard",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2019,
    threads: Annotated[int, typer.Option(help="CPU threads (results depend on it).")] = 1,
    widths: Annotated[
        str, typer.Option(help="GAN-STFM's four encoder widths (published: 16,32,64,128).")
    ] = "16,32,64,128",
    budget_s: Annotated[
        float | None,
        typer.Option(
            help="Time budget in seconds (wall clock): no epoch starts once it has passed."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a model in --out.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train a learned fusion model on CUBE's fine+coarse pairs and write it to --out.

    Held-out dates measure it after every epoch; the best epoch's weights are kept. A killed
    run, run again with the same options, resumes from its last epoch.

    Examples:

      stfcube train site/cube.zarr --model edcstfn --out site/edcstfn

      stfcube train site/cube.zarr --model ganstfm --out site/ganstfm --lr 2e-4

      stfcube fuse site/cube.zarr site/fused.zarr --method learned -p model=site/edcstfn
    """
    from stfcube.pipeline.errors import ConfigError
    from stfcube.pipeline.learned import TrainSettings, train

    try:
        width_list = tuple(int(w) for w in widths.split(","))
    except ValueError:
        raise ConfigError(f"--widths: comma-separated integers, got {widths!r}") from None
    settings = TrainSettings(
        model=model, epochs=epochs, steps=steps, batch=batch, patch=patch, lr=lr,
        patience=patience, pairs=pairs, validation_fraction=validation_fraction,
        validation_size=validation_size, autoencoder_steps=autoencoder_steps, ms_ssim=ms_ssim,
        seed=seed, threads=threads, widths=width_list,
    )  # fmt: skip
    with progress_bar(f"training {model}", console(stderr=True), quiet=quiet) as progress:
        report = train(
            cube, out, settings, overwrite=overwrite, progress=progress, budget_s=budget_s
        )
    rmse = [v["rmse"] for v in report.validation.values()]
    console().print(
        f"{out}: {model}, {report.epochs_run} epochs (best {report.best_epoch}"
        f"{f', resumed at {report.resumed_from}' if report.resumed_from else ''}), "
        f"{report.seconds:.0f} s; held-out RMSE per band {rmse}"
    )
