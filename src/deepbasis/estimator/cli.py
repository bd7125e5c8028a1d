"""``deepbasis fit`` and ``deepbasis predict``: a surrogate model from a data file in one command.

``register(app)`` adds both commands to the Typer app of :mod:`deepbasis.cli`. Heavy imports
(torch, scikit-learn, matplotlib) happen inside the commands, so ``deepbasis --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> typer.Typer:
    """Add the ``fit`` and ``predict`` commands to ``app`` and return it."""
    app.command("fit")(fit_command)
    app.command("predict")(predict_command)
    return app


def fit_command(
    data: Path = typer.Argument(..., metavar="DATA",
                                help="Data file: .csv, .tsv, .parquet/.pq or .npz."),
    target: str = typer.Option(..., "--target", "-t", metavar="COLUMNS",
                               help="Target column(s), comma separated for several outputs."),
    inputs: str = typer.Option(None, "--inputs", "-i", metavar="COLUMNS",
                               help="Input columns, comma separated [every other column, "
                                    "except row identifiers: a different integer or text in "
                                    "every row]."),
    out: Path = typer.Option(None, "--out", "-o", metavar="FILE",
                             help="Model file to write [DATA-name.model.safetensors]."),
    plot: Path = typer.Option(None, "--plot", metavar="FILE",
                              help="Fit plot PNG [beside the model]."),
    validation: float = typer.Option(0.2, "--validation", metavar="FRACTION", min=0.0, max=0.9,
                                     help="Share of rows held out to report validation "
                                          "error (0: train on every row)."),
    width: str = typer.Option("auto", "--width", metavar="N",
                              help="Units per hidden layer, or auto (64 up to 10,000 rows, 32 "
                                   "above)."),
    depth: int = typer.Option(4, "--depth", metavar="N", min=1, help="Hidden layers."),
    steps: int = typer.Option(1000, "--steps", metavar="N", min=0, help="Training iterations."),
    lr: float = typer.Option(1e-2, "--lr", metavar="RATE", help="Adam learning rate."),
    activation: str = typer.Option("auto", "--activation", metavar="NAME",
                                   help="auto (ReLU or tanh, whichever is better on held-out "
                                        "rows), one name (relu, tanh, ...) or a comma list."),
    ensemble: int = typer.Option(1, "--ensemble", metavar="N", min=1,
                                 help="Train this many members, keep the best on held-out rows."),
    seed: int = typer.Option(0, "--seed", metavar="N", min=0,
                             help="Random seed (split and initialization)."),
    dtype: str = typer.Option("float64", "--dtype", metavar="NAME", help="float64 or float32."),
    device: str = typer.Option("cpu", "--device", metavar="NAME",
                               help="Torch device, e.g. cpu or cuda."),
    threads: int = typer.Option(None, "--threads", metavar="N", min=1,
                                help="CPU threads for PyTorch [auto: 1 while rows × parameters "
                                     "< 1e9, where more do not help; else PyTorch's default]."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    skip_missing: bool = typer.Option(False, "--skip-missing",
                                      help="Leave out rows with a missing input or target "
                                           "[default: refuse the file]."),
    na_values: str = typer.Option(None, "--na-values", metavar="TEXTS",
                                  help="More cell texts meaning 'missing', comma separated "
                                       "(besides empty, NA, NaN, null, #N/A, ...)."),
) -> None:
    """Fit a BasisRegressor to DATA; print train / validation error, write the model and a plot.

    Example: deepbasis fit runs.csv --target drag --inputs speed,angle
    """
    import dataclasses

    import numpy as np

    from .._files import UnwritableError, check_writable, file_kind, same_file
    from .data import DataError, read_table
    from .regressor import BasisRegressor

    _check_device(device)
    if width != "auto":
        if not width.isdigit() or int(width) < 1:
            raise typer.BadParameter(f"{width!r} is neither auto nor a positive integer",
                                     param_hint="--width")
        width = int(width)
    # The output paths are checked before any work, not after the fit.
    out = Path(out) if out is not None else Path(f"{data.stem}.model.safetensors")
    if out.suffix != ".safetensors":  # as save() names it
        out = out.with_name(out.name + ".safetensors")
    plot = Path(plot) if plot is not None else out.with_name(
        out.name.removesuffix(".safetensors").removesuffix(".model") + ".fit.png")
    _check_plot_format(plot)
    for path, what in ((out, "--out"), (plot, "--plot")):
        if same_file(path, data):
            _fail(f"{what} {str(path)!r} is the data file; write it elsewhere")
        kind = file_kind(path)
        if kind is not None and (path is plot or "SQLite" in kind):
            _fail(f"refusing to overwrite {str(path)!r} with the {what[2:]}: it is {kind}; "
                  f"choose another {what}")
    try:
        for path in (out, plot):
            path.parent.mkdir(parents=True, exist_ok=True)
            check_writable(path)
    except OSError as error:
        _fail(str(error), 1)
    try:
        table = read_table(data, target, inputs, min_rows=1, skip_identifiers=True,
                           allow_missing=skip_missing, na_values=na_values or ())
    except (DataError, FileNotFoundError) as error:
        _fail(str(error))
    kept = np.arange(len(table.inputs))  # file rows used (all, unless --skip-missing)
    if table.missing is not None and table.missing.any():
        kept = np.flatnonzero(~table.missing)
        first = table.columns.where(int(np.flatnonzero(table.missing)[0]))
        typer.echo(f"skipped {len(table.inputs) - len(kept)} row(s) with a missing input or "
                   f"target (--skip-missing); the first is {first}")
        table = dataclasses.replace(table, inputs=table.inputs[kept], targets=table.targets[kept],
                                    missing=None)
    n = len(table.inputs)
    # One minimum, the estimator's: 3 training rows when several candidates compete on
    # held-out rows of their own (2 for one candidate), plus 1 for --validation.
    names = [a.strip() for a in activation.split(",") if a.strip()] or ["auto"]
    candidates = (2 if names == ["auto"] else len(names)) * ensemble
    need = 3 if candidates > 1 else 2
    if n < need + (validation > 0):
        what = f"{candidates} candidates" if candidates > 1 else "one network"
        _fail(f"{data.name} has {n} data row(s); fitting needs at least "
              f"{need + (validation > 0)}: {need} to train {what}"
              + (" and 1 held out for validation (--validation 0 trains on every row)"
                 if validation > 0 else ""))
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = 0 if validation == 0 else min(max(1, round(validation * n)), n - need)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    y = table.targets[:, 0] if table.targets.shape[1] == 1 else table.targets
    if "," in activation:
        activation = tuple(names)
    # Early stopping holds rows out of training; a single network on 2 training rows has none
    # to spare, so it trains on both (the minimum above stays 2 for one candidate).
    estimator = BasisRegressor(width=width, depth=depth, steps=steps, lr=lr,
                               early_stopping=len(train) >= 3,
                               activation=activation, ensemble=ensemble, random_state=seed,
                               dtype=dtype, device=device, progress=progress,
                               threads="auto" if threads is None else threads)
    columns = table.columns
    if columns is not None and columns.delimiter not in (None, ",", "\t"):
        typer.echo(f"read {data.name} as {columns.delimiter!r}-separated (its header has no "
                   "commas)")
    typer.echo(f"inputs ({len(table.input_names)}): {', '.join(table.input_names)}")
    for name in table.skipped:
        typer.echo(f"skipped column {name!r}: it looks like a row identifier (a different "
                   "value in every row); name it in --inputs to use it")
    held_out = f"{n_val} held out for validation" if n_val else "no validation split"
    typer.echo(f"fitting {', '.join(table.target_names)} from {len(table.input_names)} input(s) "
               f"on {len(train)} rows ({held_out})")
    try:
        estimator.fit(table.inputs[train], y[train])
    except ValueError as error:
        _fail(str(error))

    errors = {"train": _errors(estimator, table, train)}
    if n_val:
        errors["validation"] = _errors(estimator, table, val)
    chosen = estimator.activation_
    if estimator.validation_mse_ is not None:
        chosen += f" (best of {len(estimator.candidates_)} candidates on held-out training rows)"
    typer.echo(f"activation: {chosen}")
    if estimator.n_networks_ > 1:
        typer.echo(f"noisy rows: the model is the mean of {estimator.n_networks_} networks, "
                   "each trained with another fold of the rows held out (so the validation "
                   f"rows were unseen by 1 of the {estimator.n_networks_}: their error below "
                   "is optimistic)")
    typer.echo(_error_table(errors, table.target_names))

    try:
        path = estimator.save(
            out,
            input_columns=table.input_columns,
            input_names=table.input_names,
            target_names=table.target_names,
            data=str(data),
            validation_rows=[int(kept[i]) for i in val],
            errors=errors,
        )
    except UnwritableError as error:  # e.g. the disk filled up during the fit
        _fail(f"{error}. The fit is lost; nothing was written.", 1)
    typer.echo(f"model: {path}")
    try:
        _plot_fit(estimator, table, train, val, plot)
    except UnwritableError as error:
        _fail(f"{error} (the model is saved: {path})", 1)
    typer.echo(f"plot: {plot}")


def predict_command(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model file from `deepbasis fit`."),
    data: Path = typer.Argument(..., metavar="DATA",
                                help="File with the model's input columns (.csv, .parquet, .npz)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE",
                             help="Predictions file (.csv, .tsv, .parquet or .npz): every "
                                  "column of DATA and one prediction column per target."),
    column: str = typer.Option("{target}_pred", "--column", metavar="TEMPLATE",
                               help="Name of each prediction column; {target} is replaced by "
                                    "the target's name."),
    skip_missing: bool = typer.Option(False, "--skip-missing",
                                      help="Rows with a missing input get an empty prediction "
                                           "[default: refuse the file]."),
    na_values: str = typer.Option(None, "--na-values", metavar="TEXTS",
                                  help="More cell texts meaning 'missing', comma separated "
                                       "(besides empty, NA, NaN, null, #N/A, ...)."),
    force: bool = typer.Option(False, "--force",
                               help="Allow --out to be DATA itself (replaced by DATA plus the "
                                    "prediction columns)."),
) -> None:
    """Predict with MODEL on the inputs in DATA and write them to --out.

    The output holds every column of DATA, in order and exactly as written in DATA, then one
    column per target named by --column (drag → drag_pred), so the predictions join back to
    the rows. When DATA also has the target column(s), the error of the predictions is printed.
    """
    import numpy as np

    from .._files import UnwritableError, check_writable, file_kind, same_file
    from .data import FORMATS, DataError, read_columns, read_table, write_with_columns
    from .io import ModelFileError
    from .regressor import load_model

    if FORMATS.get(out.suffix.lower()) is None:
        _fail(f"cannot write {out.name!r}: unknown extension {out.suffix!r}; use one of "
              f"{', '.join(sorted(FORMATS))}")
    if same_file(out, model) or (file_kind(out) is not None and not same_file(out, data)):
        _fail(f"refusing to write the predictions over {str(out)!r}: it is "
              f"{file_kind(out) or 'the model file'}; choose another --out")
    if same_file(out, data) and not force:
        _fail(f"--out {str(out)!r} is the input file; write the predictions to another file "
              "(or pass --force to replace it by its columns plus the predictions)")
    try:
        check_writable(out)  # before any work; an existing file stays as it is
    except OSError as error:
        _fail(str(error), 1)
    try:
        estimator = load_model(model)
    except (ModelFileError, FileNotFoundError) as error:
        _fail(str(error))
    extra = getattr(estimator, "extra_", {}) or {}
    input_columns = extra.get("input_columns")
    target_names = extra.get("target_names") or (
        ["y"] if estimator.n_outputs_ == 1 else [f"y{j}" for j in range(estimator.n_outputs_)])
    if "{target}" not in column and len(target_names) > 1:
        _fail(f"--column {column!r} gives the same name to all {len(target_names)} targets; "
              "put {target} in it")
    try:
        if input_columns is None:  # saved from Python: feature names, or every column in order
            names = getattr(estimator, "feature_names_in_", None)
            input_columns = list(names) if names is not None else read_columns(
                data, na_values or ()).names
            if names is None and len(input_columns) != estimator.n_features_in_:
                raise DataError(
                    f"{model.name} does not name its input columns and {data.name} has "
                    f"{len(input_columns)} column(s), not the {estimator.n_features_in_} the "
                    "model expects; keep only the inputs, in training order, or save the model "
                    "with save(path, input_columns=[...])")
            if names is None:
                shown = ", ".join(repr(c) for c in input_columns[:6])
                _warn(f"{model.name} was fitted on an array and does not name its inputs, so "
                      f"the {len(input_columns)} column(s) of {data.name} are taken by "
                      f"position ({shown}{', ...' if len(input_columns) > 6 else ''}); check "
                      "that they are in training order")
        table = read_table(data, target=None, inputs=input_columns, min_rows=1,
                           allow_missing=skip_missing, purpose="prediction",
                           na_values=na_values or ())
        if table.inputs.shape[1] != estimator.n_features_in_:
            raise DataError(f"{data.name} gives {table.inputs.shape[1]} input columns, the model "
                            f"expects {estimator.n_features_in_} ({', '.join(input_columns)})")
    except (DataError, FileNotFoundError) as error:
        hint = ("" if skip_missing or "non-finite value (NaN or empty)" not in str(error) else
                " Or pass --skip-missing to write an empty prediction for such rows.")
        _fail(str(error) + hint)
    columns = dict(table.columns.values)
    names = [column.replace("{target}", name) for name in target_names]
    clash = [name for name in names if name in columns]
    if clash:
        _fail(f"{data.name} already has a column {clash[0]!r}; name the prediction columns "
              "another way with --column (e.g. --column '{target}_fit')")
    n = len(table.inputs)
    usable = ~table.missing if table.missing is not None else np.ones(n, dtype=bool)
    prediction = np.full((n, len(target_names)), np.nan)  # (N, m); NaN: written empty
    if usable.any():
        _warn_outside_box(estimator, table, usable)
        prediction[usable] = estimator.predict(table.inputs[usable]).reshape(int(usable.sum()), -1)
    try:
        write_with_columns(out, table.columns, {name: prediction[:, j]
                                                for j, name in enumerate(names)})
    except DataError as error:
        _fail(str(error))
    except UnwritableError as error:  # written beside --out and renamed: the old file is intact
        _fail(str(error), 1)
    skipped = n - int(usable.sum())
    typer.echo(f"predictions for {n - skipped} rows: {out}"
               + (f" ({skipped} row(s) with a missing input left empty)" if skipped else ""))
    for j, name in enumerate(target_names):
        truth = table.columns.values.get(name)
        if truth is None or truth.dtype == object:
            continue
        both = usable & np.isfinite(truth)
        if both.any():
            # on values / max|values|: no overflow for huge finite targets
            rmse = float(_rms(prediction[both, j] - truth[both]))
            typer.echo(f"RMSE of {name} against the values in {data.name}: {rmse:.3e}")


# --- helpers ---------------------------------------------------------------------------------


def _fail(message: str, code: int = 2):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


#: How far outside the training box an input may be, as a fraction of the box's width in that
#: coordinate, before ``predict`` warns: a little beyond the data is ordinary, far beyond is
#: extrapolation, where a piecewise-linear network just continues its last pieces.
BOX_MARGIN = 0.1


def _warn_outside_box(estimator, table, rows) -> None:
    """One warning when inputs lie outside the training box by more than :data:`BOX_MARGIN`
    of its width: how many rows, and the farthest (row, column, value, how far)."""
    import numpy as np

    lower, upper = np.asarray(estimator.x_lower_), np.asarray(estimator.x_upper_)  # (d,)
    span = np.where(upper > lower, upper - lower, 1.0)
    x = table.inputs  # (N, d)
    beyond = np.maximum(lower - x, x - upper).clip(min=0) / span  # (N, d), in box widths
    beyond[~rows] = 0.0
    far = (beyond > BOX_MARGIN).any(axis=1)
    if not far.any():
        return
    row, col = np.unravel_index(int(np.argmax(beyond)), beyond.shape)
    name = table.input_names[col]
    _warn(f"{int(far.sum())} of {int(rows.sum())} row(s) have inputs outside the training box "
          f"by more than {BOX_MARGIN:.0%} of its width, where the model extrapolates; the "
          f"farthest: {name}={x[row, col]:.6g} at {table.columns.where(int(row))} is "
          f"{beyond[row, col]:.3g} box widths outside [{lower[col]:.6g}, {upper[col]:.6g}]")


def _check_device(device: str) -> None:
    """Refuse a device this torch cannot use, before reading anything."""
    import torch

    try:
        kind = torch.device(device).type
        if kind not in ("cpu", "cuda", "mps", "xpu"):
            raise ValueError("not a device that computes")
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError, TypeError, ValueError) as error:
        reason = (str(error).strip().splitlines() or ["unknown"])[0]
        hint = (" (this PyTorch has no CUDA, or sees no GPU)"
                if str(device).startswith("cuda") else "")
        _fail(f"--device {device!r} cannot be used{hint}: {reason}. Use --device cpu")


def _check_plot_format(path: Path) -> None:
    """Refuse a --plot name whose extension matplotlib cannot write, before the fit."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = path.suffix.lower().removeprefix(".")
    if suffix and suffix not in formats:
        _fail(f"--plot {str(path)!r}: matplotlib cannot write {path.suffix!r} files; use one "
              f"of {', '.join('.' + k for k in sorted(formats))} (e.g. {path.stem}.png)")


def _errors(estimator, table, rows) -> dict[str, list[float]]:
    """RMSE, max error and relative RMSE (RMSE / std of the target over all rows) per target."""
    import numpy as np

    truth = table.targets[rows]  # (n, m)
    predicted = estimator.predict(table.inputs[rows]).reshape(truth.shape)
    residual = predicted - truth
    spread = _rms(table.targets, center=True)  # the std, without overflow
    rmse = _rms(residual)
    relative = np.where(spread > 0, rmse / np.where(spread > 0, spread, 1.0), rmse)
    return {"rmse": rmse.tolist(), "max_abs": np.abs(residual).max(axis=0).tolist(),
            "relative_rmse": relative.tolist(), "rows": int(len(rows))}


def _rms(values, center=False):
    """Root mean square of each column (the std with ``center``), computed on
    values / max|values| so that finite values near the float64 limit do not overflow."""
    import numpy as np

    peak = np.abs(values).max(axis=0)  # (m,)
    unit = values / np.where(peak > 0, peak, 1.0)
    if center:
        unit = unit - unit.mean(axis=0)
    return peak * np.sqrt((unit**2).mean(axis=0))


def _error_table(errors: dict, names: list[str]) -> str:
    lines = [f"{'target':<16} {'split':<11} {'RMSE':>10} {'max |err|':>10} {'RMSE/std':>10}"]
    for j, name in enumerate(names):
        for split, values in errors.items():
            lines.append(f"{name[:16]:<16} {split:<11} {values['rmse'][j]:>10.3e} "
                         f"{values['max_abs'][j]:>10.3e} {values['relative_rmse'][j]:>10.3e}")
    return "\n".join(lines)


def _plot_fit(estimator, table, train, val, path: Path) -> None:
    """1-D: data and fit curve + residuals; 2-D: predicted surface + error map; else parity."""
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    x, y = table.inputs, table.targets
    d, m = x.shape[1], y.shape[1]
    shown = min(m, 4)  # one row of panels per target, at most four
    figure = Figure(figsize=(10.5, 3.8 * shown), layout="constrained")
    axes = figure.subplots(shown, 2, squeeze=False)
    if d == 1:
        lo, hi = float(x.min()), float(x.max())
        grid = np.linspace(lo, hi, 2000)[:, None]
        curve = estimator.predict(grid).reshape(len(grid), -1)
        fitted = estimator.predict(x).reshape(len(x), -1)
    elif d == 2:
        gx = np.linspace(x[:, 0].min(), x[:, 0].max(), 200)
        gy = np.linspace(x[:, 1].min(), x[:, 1].max(), 200)
        mesh = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
        surface = estimator.predict(mesh).reshape(len(mesh), -1)
        fitted = estimator.predict(x).reshape(len(x), -1)
    else:
        fitted = estimator.predict(x).reshape(len(x), -1)
    for j in range(shown):
        name = table.target_names[j]
        left, right = axes[j]
        residual = fitted[:, j] - y[:, j]
        if d == 1:
            left.plot(x[train, 0], y[train, j], ".", ms=3, color="#7f7f7f", label="train data")
            if len(val):
                left.plot(x[val, 0], y[val, j], "o", ms=4, mfc="none", color="#d62728",
                          label="validation data")
            left.plot(grid[:, 0], curve[:, j], "-", lw=1.2, color="#1f77b4", label="fit")
            left.set_xlabel(table.input_names[0])
            left.set_ylabel(name)
            left.legend(fontsize=8)
            right.plot(x[train, 0], residual[train], ".", ms=3, color="#7f7f7f", label="train")
            if len(val):
                right.plot(x[val, 0], residual[val], "o", ms=4, mfc="none", color="#d62728",
                           label="validation")
            right.axhline(0.0, color="k", lw=0.6)
            right.set_xlabel(table.input_names[0])
            right.set_ylabel(f"fit − {name}")
            right.legend(fontsize=8)
        elif d == 2:
            image = left.imshow(surface[:, j].reshape(len(gy), len(gx)), origin="lower",
                                aspect="auto", extent=(gx[0], gx[-1], gy[0], gy[-1]),
                                cmap="viridis")
            left.plot(x[:, 0], x[:, 1], ".", ms=1.5, color="white", alpha=0.6)
            figure.colorbar(image, ax=left, label=f"predicted {name}")
            left.set_title(f"predicted {name} (dots: data)", fontsize=10)
            # |error| on a log scale: a signed linear scale shows only the worst point.
            size = np.abs(residual)
            top = float(size.max()) or 1.0
            norm = LogNorm(vmin=max(top * 1e-4, float(size[size > 0].min(initial=top))),
                           vmax=top)
            size = np.maximum(size, norm.vmin)
            dots = right.scatter(x[train, 0], x[train, 1], c=size[train], s=10, cmap="magma_r",
                                 norm=norm, label="train")
            if len(val):
                right.scatter(x[val, 0], x[val, 1], c=size[val], s=30, marker="s",
                              cmap="magma_r", norm=norm, edgecolors="k", linewidths=0.5,
                              label="validation")
            right.legend(fontsize=8, loc="upper right")
            figure.colorbar(dots, ax=right, label=f"|fit − {name}|")
            right.set_title("error at the data points", fontsize=10)
            for ax in (left, right):
                ax.set_xlabel(table.input_names[0])
                ax.set_ylabel(table.input_names[1])
        else:
            left.plot(y[train, j], fitted[train, j], ".", ms=3, color="#7f7f7f", label="train")
            if len(val):
                left.plot(y[val, j], fitted[val, j], "o", ms=4, mfc="none", color="#d62728",
                          label="validation")
            span = [float(y[:, j].min()), float(y[:, j].max())]
            left.plot(span, span, "k-", lw=0.6)
            left.set_xlabel(f"{name} (data)")
            left.set_ylabel(f"{name} (fit)")
            left.legend(fontsize=8)
            right.hist(residual[train], bins=40, color="#7f7f7f", alpha=0.7, label="train")
            if len(val):
                right.hist(residual[val], bins=40, color="#d62728", alpha=0.7,
                           label="validation")
            right.set_xlabel(f"fit − {name}")
            right.set_ylabel("rows")
            right.legend(fontsize=8)
    figure.suptitle(f"BasisRegressor fit of {table.path.name}", fontsize=11)
    from .._files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        figure.savefig(tmp, dpi=130, format=path.suffix.lower().removeprefix(".") or "png")
