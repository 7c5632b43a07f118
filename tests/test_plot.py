"""`python -m katas plot`: valid PNGs that show exactly what the learner's functions returned."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from katas._harness import cli, plot
from tests.project_copy import MANIFEST, ROOT

pytest.importorskip("matplotlib")  # the `plots` extra, part of `dev`

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def english(monkeypatch):
    monkeypatch.setenv("KATAS_LANG", "en")


class Recorder:
    """The kata module with some functions wrapped: each call's return value is kept."""

    def __init__(self, module, *names: str):
        self.returned: dict[str, list] = {name: [] for name in names}
        wrapped = {name: self._wrap(name, getattr(module, name)) for name in names}
        self.module = SimpleNamespace(**{**vars(module), **wrapped})

    def _wrap(self, name, function):
        def recorded(*args, **kwargs):
            result = function(*args, **kwargs)
            self.returned[name].append(result)
            return result

        return recorded


def solution_module(kata_name: str):
    kata = MANIFEST.kata(kata_name)
    return kata, plot.load_module(MANIFEST, kata, ROOT / "solutions")


def line_data(axes) -> list[tuple[list[float], list[float]]]:
    return [
        (list(map(float, line.get_xdata())), list(map(float, line.get_ydata()))) for line in axes.get_lines()
    ]


def expect_png(path: Path, size: tuple[int, int]) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    image = imread(path)
    assert image.shape[:2] == (size[1], size[0]), (
        f"{path}: {image.shape}, expected {size[0]}x{size[1]} pixels"
    )
    assert image[..., :3].std() > 0.05, f"{path} is blank"


def test_training_dynamics_plots_draw_exactly_what_the_functions_returned(tmp_path):
    kata, module = solution_module("07_training_dynamics")
    recorder = Recorder(module, "overfit_one_batch", "lr_range_test")
    figures = plot.draw(kata, recorder.module, "solutions/07_training_dynamics/training_dynamics.py")
    assert sorted(figures) == ["lr_range_test", "overfit_one_batch"]

    [(step, losses)] = recorder.returned["overfit_one_batch"]
    curve, threshold, reached = line_data(figures["overfit_one_batch"].axes[0])
    assert curve == (list(map(float, range(len(losses)))), losses)
    assert threshold[1] == [1e-3, 1e-3]
    assert step is not None and reached == ([float(step)], [losses[step]])
    assert figures["overfit_one_batch"].axes[0].get_yscale() == "log"

    [(lrs, range_losses, diverged_at)] = recorder.returned["lr_range_test"]
    axes = figures["lr_range_test"].axes[0]
    curve, divergence = line_data(axes)
    assert curve == (lrs, range_losses)
    assert divergence[0] == [diverged_at, diverged_at]
    assert axes.get_xscale() == "log"

    paths = plot.save(figures, kata, tmp_path)
    assert [p.name for p in paths] == [
        "07_training_dynamics-overfit_one_batch.png",
        "07_training_dynamics-lr_range_test.png",
    ]
    for path in paths:
        expect_png(path, (640, 400))


def test_capstone_plots_draw_the_learners_losses_accuracies_and_points(tmp_path):
    kata, module = solution_module("13_capstone")
    recorder = Recorder(module, "fit", "evaluate_accuracy", "SpiralDataset")
    figures = plot.draw(kata, recorder.module, "solutions/13_capstone/capstone.py")
    [losses] = recorder.returned["fit"]
    accuracies = recorder.returned["evaluate_accuracy"]
    assert len(losses) == 30 and len(accuracies) == 30  # one held-out accuracy per epoch

    loss_axes, accuracy_axes = figures["losses"].axes
    epochs = list(map(float, range(1, 31)))
    assert line_data(loss_axes) == [(epochs, losses)]
    assert line_data(accuracy_axes) == [(epochs, accuracies)]

    [dataset] = recorder.returned["SpiralDataset"]
    boundary = figures["decision_boundary"].axes[0]
    drawn = [point for scatter in boundary.collections[-2:] for point in scatter.get_offsets().tolist()]
    points = [dataset[i][0].tolist() for i in range(len(dataset))]
    assert torch.allclose(torch.tensor(sorted(drawn)), torch.tensor(sorted(points)))
    assert f"{accuracies[-1]:.1%}" in boundary.get_title()

    for path in plot.save(figures, kata, tmp_path):
        expect_png(path, (640, 400) if path.name.endswith("losses.png") else (520, 500))


def test_a_stub_still_todo_names_the_function_to_write_first(tmp_path):
    kata = MANIFEST.kata("07_training_dynamics")
    stub = kata.stub_path(tmp_path)
    stub.parent.mkdir(parents=True)
    stub.write_text(kata.stub_path(ROOT / "katas").read_text(encoding="utf-8"), encoding="utf-8")
    module = plot.load_module(MANIFEST, kata, tmp_path)
    with pytest.raises(plot.PlotError) as raised:
        plot.draw(kata, module, "katas/07_training_dynamics/training_dynamics.py")
    assert raised.value.status == plot.EXIT_TODO
    assert str(raised.value) == (
        "TODO: implement overfit_one_batch() in katas/07_training_dynamics/training_dynamics.py first; "
        "plot draws what your functions return"
    )


def broken_lr_range_test(*args):
    raise ValueError("lrs and losses differ in length\nsecond line")


def test_an_error_in_the_learners_code_is_one_line_naming_the_function():
    kata, module = solution_module("07_training_dynamics")
    learner = SimpleNamespace(**{**vars(module), "lr_range_test": broken_lr_range_test})
    with pytest.raises(plot.PlotError) as raised:
        plot.draw(kata, learner, __file__)
    assert str(raised.value) == (
        "broken_lr_range_test() raised ValueError: lrs and losses differ in length; "
        "run pytest katas/07_training_dynamics to see why, then plot again"
    )


def test_without_matplotlib_one_line_names_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    code = cli.main(["--root", str(ROOT), "plot", "07_training_dynamics", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert '"plots" extra: pip install -e ".[plots]"' in err
    assert list(tmp_path.iterdir()) == []


def test_a_kata_without_figures_and_an_unknown_kata_are_refused(capsys):
    assert cli.main(["--root", str(ROOT), "plot", "06_training_loop"]) == 2
    assert "06_training_loop has nothing to draw; plot knows 07_training_dynamics, 13_capstone" in (
        capsys.readouterr().err
    )
    assert cli.main(["--root", str(ROOT), "plot", "99_nothing"]) == 2
    assert "unknown kata 99_nothing" in capsys.readouterr().err


def test_the_command_writes_the_pngs_and_prints_their_paths(tmp_path, capsys):
    code = cli.main(
        ["--root", str(ROOT), "plot", "katas/07_training_dynamics/", "--solutions", "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0
    printed = [Path(line) for line in out.splitlines()]
    assert printed == [
        tmp_path / "07_training_dynamics-overfit_one_batch.png",
        tmp_path / "07_training_dynamics-lr_range_test.png",
    ]
    for path in printed:
        expect_png(path, (640, 400))
