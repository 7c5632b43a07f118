"""Every string the harness shows a learner, in one place."""

HEADER = "torch-katas: kata modules come from {source}/"
TODO_LINE = "TODO: implement {function}() in {path}  (stuck? python -m katas hint {exercise})"
LIKELY_CAUSE_TITLE = "likely cause"
NEEDS_CUDA = "needs CUDA"
NEEDS_MULTI_GPU = "needs 2+ CUDA devices"
REQUIRED_GPU_MISSING = (
    "{reason}, and KATAS_REQUIRE_GPU=1 forbids skipping it: run this on a machine with CUDA"
)

STUB_SYNTAX_ERROR = (
    "{path} does not compile, so none of its tests can run:\n"
    "  {prefix}{text}\n"
    "  {pointer}\n"
    "  SyntaxError: {error}\n"
    "Fix the line above and run again."
)
STUB_IMPORT_ERROR = "{path} raised an error while being imported, so none of its tests can run:"
PROGRESS_BROKEN = "{kata}  cannot run: {path} does not import (see the error above)"

PROGRESS_TITLE = "torch-katas progress"
PROGRESS_AGAINST_SOLUTIONS = "(tests run against solutions/)"
PROGRESS_KATA_LINE = "{kata}  {done}/{total} exercises done"
PROGRESS_EXERCISE_LINE = "  {mark} {name:<{width}}  {status}"
PROGRESS_NEXT = "Next: {exercise} in {path}  (hint: python -m katas hint {exercise})"
PROGRESS_ALL_DONE = "All exercises in this run are done. On to the next kata!"
PROGRESS_PARTIAL = "Some exercises were not run (deselected); run the whole kata to see them."

STATUS_MARKS = {"done": "✓", "failing": "✗", "todo": "·", "skipped": "-", "not run": "?"}

UNMARKED_TEST = (
    "{nodeid}: kata tests need @pytest.mark.exercise(NAME) with NAME an exercise of "
    "{kata} in katas/manifest.toml (one of: {names})"
)
UNKNOWN_KATA_DIR = (
    "{path}: this folder is not a kata in katas/manifest.toml; add a [[kata]] entry for it "
    "or move the tests out of katas/"
)
UNKNOWN_EXERCISE_OPTION = "--exercise {name!r} matches no exercise{close}"
