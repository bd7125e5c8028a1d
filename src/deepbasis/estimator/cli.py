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
    target: str = typer.Option(..., "--target", "-t",
                               help="Target column(s), comma separated for several outputs."),
    inputs: str = typer.Option(None, "--inputs", "-i",
                               help="Input columns, comma separated [every other column]."),
    out: Path = typer.Option(None, "--out", "-o",
                             help="Model file to write [DATA-name.model.safetensors]."),
    plot: Path = typer.Option(None, "--plot", help="Fit plot PNG [beside the model]."),
    validation: float = typer.Option(0.2, "--validation", min=0.0, max=0.9,
                                     help="Share of rows held out to report validation "
                                          "error (0: train on every row)."),
    width: int = typer.Option(32, "--width", min=1, help="Units per hidden layer."),
    depth: int = typer.Option(4, "--depth", min=1, help="Hidden layers."),
    steps: int = typer.Option(1000, "--steps", min=0, help="Training iterations."),
    lr: float = typer.Option(5e-3, "--lr", help="Adam learning rate."),
    activation: str = typer.Option("auto", "--activation",
                                   help="auto (ReLU or tanh, whichever is better on held-out "
                                        "rows), one name (relu, tanh, ...) or a comma list."),
    ensemble: int = typer.Option(1, "--ensemble", min=1,
                                 help="Train this many members, keep the best on held-out rows."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed (split and initialization)."),
    dtype: str = typer.Option("float64", "--dtype", help="float64 or float32."),
    device: str = typer.Option("cpu", "--device", help="Torch device, e.g. cpu or cuda."),
    threads: int = typer.Option(None, "--threads", min=1,
                                help="CPU threads for PyTorch [1 below 50,000 rows, else "
                                     "PyTorch's default]."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Fit a BasisRegressor to DATA; print train / validation error, write the model and a plot.

    Example: deepbasis fit runs.csv --target drag --inputs speed,angle
    """
    import numpy as np
    import torch

    from .data import DataError, read_table
    from .regressor import BasisRegressor

    try:
        table = read_table(data, target, inputs, min_rows=3 if validation > 0 else 2)
    except (DataError, FileNotFoundError) as error:
        _fail(str(error))
    n = len(table.inputs)
    if threads is not None or n < 50_000:
        # Small networks on small data gain nothing from intra-op threads, and on a busy
        # machine they lose a lot: 800 rows, default settings, 2 shared cores: 6.4 s with one
        # thread, 82 s with two.
        torch.set_num_threads(threads or 1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = 0 if validation == 0 else min(max(1, round(validation * n)), n - 2)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    y = table.targets[:, 0] if table.targets.shape[1] == 1 else table.targets
    if "," in activation:
        activation = tuple(name.strip() for name in activation.split(",") if name.strip())
    estimator = BasisRegressor(width=width, depth=depth, steps=steps, lr=lr,
                               activation=activation, ensemble=ensemble, random_state=seed,
                               dtype=dtype, device=device, progress=progress)
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
    typer.echo(_error_table(errors, table.target_names))

    out = Path(out) if out is not None else Path(f"{data.stem}.model.safetensors")
    path = estimator.save(
        out,
        input_columns=table.input_columns,
        input_names=table.input_names,
        target_names=table.target_names,
        data=str(data),
        validation_rows=[int(i) for i in val],
        errors=errors,
    )
    typer.echo(f"model: {path}")
    plot = Path(plot) if plot is not None else path.with_name(
        path.name.removesuffix(".safetensors").removesuffix(".model") + ".fit.png")
    _plot_fit(estimator, table, train, val, plot)
    typer.echo(f"plot: {plot}")


def predict_command(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model file from `deepbasis fit`."),
    data: Path = typer.Argument(..., metavar="DATA",
                                help="File with the model's input columns (.csv, .parquet, .npz)."),
    out: Path = typer.Option(..., "--out", "-o",
                             help="Predictions file (.csv, .tsv, .parquet or .npz): the input "
                                  "columns and one column per target."),
) -> None:
    """Predict with MODEL on the inputs in DATA and write them to --out.

    When DATA also has the target column(s), the error of the predictions is printed.
    """
    import numpy as np

    from .data import DataError, read_columns, read_table, write_table
    from .io import ModelFileError
    from .regressor import load_model

    try:
        estimator = load_model(model)
    except (ModelFileError, FileNotFoundError) as error:
        _fail(str(error))
    extra = getattr(estimator, "extra_", {}) or {}
    input_columns = extra.get("input_columns")
    target_names = extra.get("target_names") or (
        ["y"] if estimator.n_outputs_ == 1 else [f"y{j}" for j in range(estimator.n_outputs_)])
    try:
        if input_columns is None:  # saved from Python: feature names, or every column in order
            names = getattr(estimator, "feature_names_in_", None)
            input_columns = list(names) if names is not None else read_columns(data).names
            if names is None and len(input_columns) != estimator.n_features_in_:
                raise DataError(
                    f"{model.name} does not name its input columns and {data.name} has "
                    f"{len(input_columns)} column(s), not the {estimator.n_features_in_} the "
                    "model expects; keep only the inputs, in training order, or save the model "
                    "with save(path, input_columns=[...])")
        truth = set(target_names) <= set(read_columns(data).names)
        table = read_table(data, target=target_names if truth else None, inputs=input_columns,
                           min_rows=1)
        if table.inputs.shape[1] != estimator.n_features_in_:
            raise DataError(f"{data.name} gives {table.inputs.shape[1]} input columns, the model "
                            f"expects {estimator.n_features_in_} ({', '.join(input_columns)})")
    except (DataError, FileNotFoundError) as error:
        _fail(str(error))
    prediction = estimator.predict(table.inputs).reshape(len(table.inputs), -1)  # (N, m)
    columns = {name: table.inputs[:, j] for j, name in enumerate(table.input_names)}
    for j, name in enumerate(target_names):
        columns[name] = prediction[:, j]
    try:
        write_table(out, columns)
    except DataError as error:
        _fail(str(error))
    typer.echo(f"predictions for {len(prediction)} rows: {out}")
    if table.targets is not None:
        rmse = np.sqrt(((prediction - table.targets) ** 2).mean(axis=0))
        for name, value in zip(target_names, rmse, strict=True):
            typer.echo(f"RMSE of {name} against the values in {data.name}: {value:.3e}")


# --- helpers ---------------------------------------------------------------------------------


def _fail(message: str, code: int = 2):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _errors(estimator, table, rows) -> dict[str, list[float]]:
    """RMSE, max error and relative RMSE (RMSE / std of the target over all rows) per target."""
    import numpy as np

    truth = table.targets[rows]  # (n, m)
    predicted = estimator.predict(table.inputs[rows]).reshape(truth.shape)
    residual = predicted - truth
    spread = table.targets.std(axis=0)
    rmse = np.sqrt((residual**2).mean(axis=0))
    relative = np.where(spread > 0, rmse / np.where(spread > 0, spread, 1.0), rmse)
    return {"rmse": rmse.tolist(), "max_abs": np.abs(residual).max(axis=0).tolist(),
            "relative_rmse": relative.tolist(), "rows": int(len(rows))}


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
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130)
