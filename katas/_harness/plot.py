"""`python -m katas plot KATA`: the learner's own runs drawn to PNG (matplotlib, the `plots` extra).

A drawable kata has a recipe here: it calls the kata's functions from the learner's file
with the settings of their docstring examples and draws exactly what they return. The
recipes take the kata module as an argument (`draw`), so the project's tests can hand them
a module whose functions record their results. matplotlib is imported only when drawing,
with the Agg backend (no window, no display): kata runs never pay for it.
"""

from __future__ import annotations

import importlib
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from . import language
from .manifest import Kata, Manifest

EXIT_TODO = 1  # a function the plot needs is not written yet, or it raised
EXIT_USAGE = 2  # no matplotlib, or a kata with nothing to draw
DEFAULT_OUT = Path(".katas") / "plots"

TEXTS = {
    "en": {
        "needs_matplotlib": 'plot needs matplotlib, the "plots" extra: pip install -e ".[plots]" '
        "(or pip install matplotlib)",
        "nothing_to_draw": "{kata} has nothing to draw; plot knows {katas}",
        "todo": "TODO: implement {function}() in {path} first; plot draws what your functions return",
        "raised": "{function}() raised {error}; run pytest katas/{kata} to see why, then plot again",
        "no_solutions": "{path} is missing: --solutions draws the reference solutions of a full checkout",
        "overfit_title": "overfit_one_batch: one batch of 8, MLP 4 -> 32 -> 1, Adam(lr=0.01)",
        "overfit_reached": "below the threshold at step {step}",
        "overfit_never": "never below the threshold in {steps} steps",
        "range_title": "lr_range_test: 50 batches, MLP 4 -> 16 -> 1, SGD",
        "range_diverged": "diverged at lr = {lr:.3g}",
        "range_never": "never diverged",
        "capstone_title": "capstone: two spirals, {epochs} epochs of fit()",
        "boundary_title": "decision boundary after {epochs} epochs; held-out accuracy {accuracy:.1%}",
        "loss": "training loss",
        "accuracy": "held-out accuracy",
        "step": "step",
        "epoch": "epoch",
        "lr": "learning rate (log scale)",
        "threshold": "threshold",
    },
    "zh": {
        "needs_matplotlib": 'plot 需要 matplotlib，即可选依赖 "plots"：pip install -e ".[plots]"'
        "（或 pip install matplotlib）",
        "nothing_to_draw": "{kata} 没有可画的内容；plot 能画的是 {katas}",
        "todo": "待完成：先在 {path} 中实现 {function}()；plot 画出的是你的函数返回的结果",
        "raised": "{function}() 抛出了 {error}；运行 pytest katas/{kata} 查看原因，然后再画一次",
        "no_solutions": "缺少 {path}：--solutions 只能在完整的仓库中画出参考答案",
        # Figure texts stay English: matplotlib's default fonts have no Chinese glyphs.
    },
}


def text(key: str) -> str:
    return TEXTS.get(language.current(), {}).get(key) or TEXTS["en"][key]


def _figure_text(key: str) -> str:
    return TEXTS["en"][key]


# --- the recipes: call the kata's functions, draw what they return ------------------------------


def _training_dynamics(td: Any) -> dict[str, Any]:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    # overfit_one_batch, as in its docstring
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=8)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    threshold = 1e-3
    step, losses = td.overfit_one_batch(model, nn.MSELoss(), optimizer, loader, threshold, 500)

    figure, axes = _new_figure()
    axes.semilogy(range(len(losses)), losses, marker=".", label=_figure_text("loss"))
    axes.axhline(threshold, color="gray", linestyle="--", label=_figure_text("threshold"))
    if step is not None:
        axes.plot(
            [step],
            [losses[step]],
            "o",
            color="tab:red",
            label=_figure_text("overfit_reached").format(step=step),
        )
    else:
        axes.set_title(_figure_text("overfit_never").format(steps=len(losses)), fontsize=9)
    axes.set(xlabel=_figure_text("step"), ylabel="MSE (log scale)")
    figure.suptitle(_figure_text("overfit_title"), fontsize=10)
    axes.legend()
    drawn = {"overfit_one_batch": figure}

    # lr_range_test, as in its docstring
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1600, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-1.0], [0.5], [0.5]]) + 0.1 * torch.randn(1600, 1, generator=gen)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    lrs, losses, diverged_at = td.lr_range_test(model, nn.MSELoss(), optimizer, loader, 1e-3, 10.0)

    figure, axes = _new_figure()
    axes.plot(lrs, losses, marker=".", label=_figure_text("loss"))
    axes.set_xscale("log")
    finite = [v for v in losses if math.isfinite(v)]
    if finite:  # a nan or inf at the end would stretch the axis to nothing
        low, high = min(finite), max(finite)
        axes.set_ylim(low - 0.05 * (high - low + 1e-12), high + 0.05 * (high - low + 1e-12))
    if diverged_at is not None:
        axes.axvline(
            diverged_at,
            color="tab:red",
            linestyle="--",
            label=_figure_text("range_diverged").format(lr=diverged_at),
        )
    else:
        axes.set_title(_figure_text("range_never"), fontsize=9)
    axes.set(xlabel=_figure_text("lr"), ylabel="MSE")
    figure.suptitle(_figure_text("range_title"), fontsize=10)
    axes.legend()
    drawn["lr_range_test"] = figure
    return drawn


def _capstone(cap: Any, epochs: int = 30, seed: int = 0) -> dict[str, Any]:
    import torch

    # run_experiment's settings, with the curves and the model kept
    dataset = cap.SpiralDataset(n_per_class=200, noise=0.05, seed=seed)
    train_loader, test_loader = cap.split_loaders(dataset, 0.25, 32, seed=seed)
    torch.manual_seed(seed)
    model = cap.build_model(64)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    accuracies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="katas-plot-") as folder:
        losses = cap.fit(
            model, optimizer, train_loader, epochs, Path(folder) / "checkpoint.pt",
            on_epoch_end=lambda epoch, loss: accuracies.append(cap.evaluate_accuracy(model, test_loader)),
        )  # fmt: skip

    figure, axes = _new_figure()
    numbers = range(1, len(losses) + 1)
    axes.plot(numbers, losses, marker=".", color="tab:blue", label=_figure_text("loss"))
    axes.set(xlabel=_figure_text("epoch"), ylabel=_figure_text("loss"))
    right = axes.twinx()
    right.plot(
        range(1, len(accuracies) + 1),
        accuracies,
        marker=".",
        color="tab:green",
        label=_figure_text("accuracy"),
    )
    right.set(ylabel=_figure_text("accuracy"), ylim=(0.0, 1.05))
    lines = axes.get_lines() + right.get_lines()
    axes.legend(lines, [line.get_label() for line in lines], loc="lower left")
    figure.suptitle(_figure_text("capstone_title").format(epochs=len(losses)), fontsize=10)
    drawn = {"losses": figure}

    points = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.stack([dataset[i][1] for i in range(len(dataset))])
    xs = torch.linspace(-1.4, 1.4, 141)
    grid_x, grid_y = torch.meshgrid(xs, xs, indexing="xy")
    grid = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)
    classes = cap.predict(model, grid).argmax(dim=1).reshape(grid_x.shape)

    figure, axes = _new_figure(size=(5.2, 5.0))
    axes.contourf(
        grid_x.numpy(),
        grid_y.numpy(),
        classes.numpy(),
        levels=[-0.5, 0.5, 1.5],
        colors=["#c6dbef", "#fdd0a2"],
    )
    for k, color in ((0, "tab:blue"), (1, "tab:orange")):
        chosen = points[labels == k]
        axes.scatter(chosen[:, 0].numpy(), chosen[:, 1].numpy(), s=6, color=color, label=f"class {k}")
    axes.set(aspect="equal", xlim=(-1.4, 1.4), ylim=(-1.4, 1.4))
    axes.legend(loc="upper right", fontsize=8)
    accuracy = accuracies[-1] if accuracies else cap.evaluate_accuracy(model, test_loader)
    axes.set_title(_figure_text("boundary_title").format(epochs=len(losses), accuracy=accuracy), fontsize=9)
    drawn["decision_boundary"] = figure
    return drawn


RECIPES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "07_training_dynamics": _training_dynamics,
    "13_capstone": _capstone,
}


def _new_figure(size: tuple[float, float] = (6.4, 4.0)):
    from matplotlib.figure import Figure  # a Figure of its own: no pyplot state, Agg when saved

    figure = Figure(figsize=size, dpi=100, layout="constrained")
    return figure, figure.add_subplot()


# --- the command ----------------------------------------------------------------------------------


class PlotError(Exception):
    """A one-line reason the plot could not be drawn, and the exit status to report it with."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def draw(kata: Kata, module: ModuleType | Any, path: str) -> dict[str, Any]:
    """{name: matplotlib Figure} for `kata`, drawn from the functions of `module` (the file at `path`)."""
    recipe = RECIPES.get(kata.name)
    if recipe is None:
        raise PlotError(text("nothing_to_draw").format(kata=kata.name, katas=", ".join(RECIPES)), EXIT_USAGE)
    try:
        import matplotlib
    except ImportError:
        raise PlotError(text("needs_matplotlib"), EXIT_USAGE) from None
    matplotlib.use("Agg")
    try:
        return recipe(module)
    except NotImplementedError as err:
        function = str(err) or "?"
        raise PlotError(text("todo").format(function=function, path=path), EXIT_TODO) from None
    except Exception as err:  # the learner's code: report it in one line, pytest tells the rest
        function = _failing_function(err, path)
        error = f"{type(err).__name__}: {err}".splitlines()[0]
        raise PlotError(
            text("raised").format(function=function, error=error, kata=kata.name), EXIT_TODO
        ) from None


def _failing_function(err: BaseException, path: str) -> str:
    """The innermost function of the learner's file in the traceback, else '?'."""
    found, tb = "?", err.__traceback__
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == Path(path).resolve():
            found = tb.tb_frame.f_code.co_name
        tb = tb.tb_next
    return found


def load_module(manifest: Manifest, kata: Kata, source_root: Path) -> ModuleType:
    """The kata's module from `source_root` (katas/ or solutions/), as the tests import it."""
    from .importer import KataModuleFinder

    finder = KataModuleFinder.for_manifest(manifest, source_root)
    finder.install()
    try:
        return importlib.import_module(kata.module)
    finally:
        finder.uninstall()


def save(figures: dict[str, Any], kata: Kata, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in figures.items():
        path = out / f"{kata.name}-{name}.png"
        figure.savefig(path, dpi=100)
        paths.append(path)
    return paths


def main(manifest: Manifest, kata: Kata, out: Path | None = None, solutions: bool = False) -> int:
    """Draw `kata`'s figures into `out` and print their paths; a one-line reason and a status if not."""
    source_root = manifest.root / ("solutions" if solutions else "katas")
    path = kata.stub_path(source_root)
    shown = path.relative_to(manifest.root).as_posix()
    out = out if out is not None else manifest.root / DEFAULT_OUT
    try:
        if not path.is_file():
            raise PlotError(text("no_solutions").format(path=shown), EXIT_USAGE)
        if kata.name not in RECIPES:
            draw(kata, None, shown)  # raises: nothing to draw
        try:
            import matplotlib  # noqa: F401  (before the kata's module: a missing extra is said first)
        except ImportError:
            raise PlotError(text("needs_matplotlib"), EXIT_USAGE) from None
        figures = draw(kata, load_module(manifest, kata, source_root), shown)
    except PlotError as err:
        print(err, file=sys.stderr)
        return err.status
    for saved in save(figures, kata, out):
        print(saved)
    return 0
