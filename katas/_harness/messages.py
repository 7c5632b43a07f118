"""Every string the harness shows a learner, in one place (Chinese: messages_zh.py)."""

from .language import current as _language

HEADER = "torch-katas: kata modules come from {source}/"
TODO_LINE = "TODO: implement {function}() in {path}  (stuck? python -m katas hint {exercise})"
LIKELY_CAUSE_TITLE = "likely cause"
LIKELY_CAUSE_LINE = "Likely cause: {cause}"
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
PROGRESS_HIDDEN = (
    "{count} other failing test(s) are not shown above; pytest --all (or -v) shows them in full."
)

STATUS_MARKS = {"done": "✓", "failing": "✗", "todo": "·", "skipped": "-", "not run": "?", "broken": "!"}
STATUS_WORDS = {
    "done": "done",
    "failing": "failing",
    "todo": "todo",
    "skipped": "skipped",
    "not run": "not run",
    "broken": "broken",
}
STATUS_FAILING = "failing ({failed} of {total} tests)"
STATUS_DONE_SKIPPED = "done ({skipped} skipped)"

UNMARKED_TEST = (
    "{nodeid}: kata tests need @pytest.mark.exercise(NAME) with NAME an exercise of "
    "{kata} in katas/manifest.toml (one of: {names})"
)
UNKNOWN_KATA_DIR = (
    "{path}: this folder is not a kata in katas/manifest.toml; add a [[kata]] entry for it "
    "or move the tests out of katas/"
)
UNKNOWN_EXERCISE_OPTION = "--exercise {name!r} matches no exercise{close}"

LIST_RUNNING = "running the tests of {katas} (changed since their last run)..."
LIST_BROKEN = "broken: the file does not import (run pytest on the kata to see why)"
LIST_OVERALL = "Overall: {done}/{total} exercises done ({percent}%)"
LIST_ALL_DONE = "Every exercise is done. Congratulations!"

RESET_CONFIRM = (
    "Reset {what} to its untouched stub? This replaces your code in {path} (a backup is kept). [y/N] "
)
RESET_NEEDS_CONFIRMATION = (
    "reset asks before replacing your code; run it in a terminal, or pass --yes to skip asking"
)
RESET_CANCELLED = "Nothing was changed."
RESET_NOTHING = "{what} is already the untouched stub in {path}; nothing to reset."
RESET_DONE = "Reset {what} in {path}."
RESET_BACKUP = "Your previous version is saved in {backup}"
RESET_UNKNOWN = "'{target}' is neither a kata nor an exercise; {hint}"
RESET_DID_YOU_MEAN = "did you mean: {names}?"
RESET_NAMING = "name a kata (e.g. 01_autograd) or an exercise (KATA/FUNCTION, e.g. 01_autograd/grad_at)"
RESET_NO_PRISTINE = (
    "no pristine copy of {path} in katas/_harness/pristine_stubs.json; "
    "restore that file from the torch-katas repository"
)
RESET_SYNTAX_ERROR = (
    "{path} has a syntax error at line {line}, so one function cannot be located; "
    "fix it, or reset the whole kata: python -m katas reset {kata}"
)
RESET_MISSING_DEFINITION = (
    "{name} is not defined in your file any more; "
    "reset the whole kata to get it back: python -m katas reset {kata}"
)

WATCH_HEADER = "torch-katas watch: {kata}  {done}/{total} done   [run {run}, {seconds:.2f} s]{state}"
WATCH_CHECKING = "  checking the other exercises..."
WATCH_LAST_COUNT = "  (the count of the last run that ran)"
WATCH_FOOTER = "Watching {folder} - save a file to run again, Ctrl-C to stop."
WATCH_HINT = "Stuck? python -m katas hint {exercise}"
WATCH_PASSED = "✓ {exercise} passes."
WATCH_KATA_DONE = "✓ Every exercise of {kata} is done."
WATCH_ALL_DONE = "Every exercise of every kata is done. Congratulations!"
WATCH_STOPPED = "Stopped watching."
WATCH_TIMEOUT = (
    "The run took longer than {seconds:.0f} s and was stopped. An infinite loop in your code? "
    "Save to run again."
)
WATCH_CRASH_SIGNAL = "The test run crashed ({signal}). Save to run again."
WATCH_CRASH_EXIT = (
    "The test run ended without a result (exit status {code}): does your code call sys.exit() or "
    "os._exit()? Save to run again."
)
WATCH_CUT = "... ({count} more lines; run pytest on the kata for the full report)"

HINT_LINE = "{exercise} hint {number}/{total}: {text}"
HINT_LAST = "That was the last hint. The lesson is in katas/{kata}/README.md."
HINT_AMBIGUOUS = "'{name}' matches no single exercise; did you mean: {names}?"
HINT_UNKNOWN = (
    "no exercise named '{name}'; exercises are named KATA/FUNCTION, "
    "e.g. 01_autograd/grad_at (all are listed in katas/manifest.toml)"
)
HINT_KATA_DONE = (
    "every exercise of {kata} passed in your last run; "
    "name one for its hints: python -m katas hint {kata}/FUNCTION"
)
SOLUTION_HINT = "Stuck? python -m katas hint {exercise}"
SOLUTION_NOT_YET = (
    "{exercise}: {failing} of its {total} tests still fail; its solution is shown once they all pass."
)
SOLUTION_NOT_RUN = (
    "{exercise} has not passed yet (its tests were skipped); its solution is shown once it passes."
)
SOLUTION_BROKEN = "{path} does not import, so {exercise} cannot pass yet; run pytest on the kata to see why."
SOLUTION_NOT_IN_HANDOUT = (
    "the reference solutions are not part of this handout; ask your instructor once your tests pass"
)
SOLUTION_PASSES = "{exercise} passes. Compare your code with the reference:"
SOLUTION_YOURS = "--- yours: {path}"
SOLUTION_REFERENCE = "--- reference: {path}"
SOLUTION_MISSING = "(not found in the file)"
GUIDED_INTRO = (
    "torch-katas: the guided loop. It runs the first unfinished exercise's tests now and again on "
    "every save; edit the file it names. Ctrl-C leaves it.\n"
    "Other commands: python -m katas list | hint EXERCISE | solution EXERCISE | reset KATA_OR_EXERCISE "
    "| grade  (python -m katas --help for all)"
)
WATCH_UNKNOWN_KATA = "no kata named '{name}'{close} (katas: {names})"
DID_YOU_MEAN_SUFFIX = "; did you mean: {names}?"
NEEDS_CHECKOUT = (
    "{cwd} is not inside a torch-katas folder: cd into your clone of the torch-katas repository "
    "(or the copy your course handed out) and run the command there"
)
ERROR_PREFIX = "error: "

# Values that come back from learner code (values.py) and library calls it must not make (forbid.py).
VALUE_CALLED = "Called {call}."
VALUE_SUBCLASS = (
    "It returned {what}, a subclass of {base}; return a plain {base} (the tests compare exact types)"
)
VALUE_OVERRIDES = (
    "It returned {what}, whose class defines {dunders}; return plain values: floats, tensors, lists "
    "(the tests compare exact types)"
)
VALUE_AT = " (at result{path})"
VALUE_A = "a {type}"
VALUE_AN = "an {type}"
VALUE_YIELDED = "{call}, item {index} it yielded"
FORBIDDEN_CALLED = "It called {shown}{seen}, which this exercise asks you to write yourself."
FORBIDDEN_SEEN_AS = " (seen as {op})"
FORBIDDEN_SEEN_CODE = " (its code ran, reached through another name)"
FORBIDDEN_UNWATCHED = (
    "The watch for library calls this exercise forbids was switched off while it ran, so the test "
    "cannot tell what it called; leave sys.setprofile alone"
)

if _language() == "zh":
    from .messages_zh import *  # noqa: F403  (same names, Chinese text)
