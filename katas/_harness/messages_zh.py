"""messages.py in Chinese: the same names and the same {fields}; tests/test_languages.py checks both."""

HEADER = "torch-katas：kata 模块来自 {source}/"
TODO_LINE = "待完成：在 {path} 中实现 {function}()（卡住了？python -m katas hint {exercise}）"
LIKELY_CAUSE_TITLE = "可能的原因"
LIKELY_CAUSE_LINE = "可能的原因：{cause}"
NEEDS_CUDA = "需要 CUDA"
NEEDS_MULTI_GPU = "需要 2 块及以上 CUDA 设备"
REQUIRED_GPU_MISSING = "{reason}，而 KATAS_REQUIRE_GPU=1 不允许跳过：请在有 CUDA 的机器上运行"

STUB_SYNTAX_ERROR = (
    "{path} 无法编译，它的测试一个也运行不了：\n"
    "  {prefix}{text}\n"
    "  {pointer}\n"
    "  SyntaxError: {error}\n"
    "修正上面这一行，然后再运行一次。"
)
STUB_IMPORT_ERROR = "导入 {path} 时出错，它的测试一个也运行不了："
PROGRESS_BROKEN = "{kata}  无法运行：{path} 导入失败（错误见上方）"

PROGRESS_TITLE = "torch-katas 进度"
PROGRESS_AGAINST_SOLUTIONS = "（测试针对 solutions/ 运行）"
PROGRESS_KATA_LINE = "{kata}  已完成 {done}/{total} 个练习"
PROGRESS_EXERCISE_LINE = "  {mark} {name:<{width}}  {status}"
PROGRESS_NEXT = "下一个：{path} 中的 {exercise}（提示：python -m katas hint {exercise}）"
PROGRESS_ALL_DONE = "本次运行的练习全部完成。继续下一个 kata 吧！"
PROGRESS_PARTIAL = "有些练习没有运行（被筛掉了）；运行整个 kata 才能看到它们。"
PROGRESS_HIDDEN = "另有 {count} 个失败的测试没有显示在上面；pytest --all（或 -v）会完整显示。"

STATUS_MARKS = {"done": "✓", "failing": "✗", "todo": "·", "skipped": "-", "not run": "?", "broken": "!"}
STATUS_WORDS = {
    "done": "已完成",
    "failing": "未通过",
    "todo": "待完成",
    "skipped": "已跳过",
    "not run": "未运行",
    "broken": "无法运行",
}
STATUS_FAILING = "未通过（{total} 个测试中 {failed} 个失败）"
STATUS_DONE_SKIPPED = "已完成（跳过 {skipped} 个）"

UNMARKED_TEST = (
    "{nodeid}：kata 测试需要 @pytest.mark.exercise(NAME)，NAME 是 katas/manifest.toml 中 "
    "{kata} 的某个练习（可选：{names}）"
)
UNKNOWN_KATA_DIR = (
    "{path}：这个文件夹不是 katas/manifest.toml 中的 kata；请为它添加 [[kata]] 条目，或把测试移出 katas/"
)
UNKNOWN_EXERCISE_OPTION = "--exercise {name!r} 没有对应的练习{close}"

LIST_RUNNING = "正在运行 {katas} 的测试（自上次运行后有改动）……"
LIST_BROKEN = "损坏：文件无法导入（对这个 kata 运行 pytest 查看原因）"
LIST_OVERALL = "总计：已完成 {done}/{total} 个练习（{percent}%）"
LIST_ALL_DONE = "所有练习都完成了，恭喜！"

RESET_CONFIRM = "把 {what} 重置为未改动的桩代码？这会替换你在 {path} 中的代码（会保留备份）。[y/N] "
RESET_NEEDS_CONFIRMATION = "reset 在替换你的代码之前会先询问；请在终端中运行，或加上 --yes 跳过询问"
RESET_CANCELLED = "什么都没有改动。"
RESET_NOTHING = "{path} 中的 {what} 已经是未改动的桩代码，无需重置。"
RESET_DONE = "已重置 {path} 中的 {what}。"
RESET_BACKUP = "你之前的版本保存在 {backup}"
RESET_UNKNOWN = "'{target}' 既不是 kata 也不是练习；{hint}"
RESET_DID_YOU_MEAN = "你是不是想要：{names}？"
RESET_NAMING = "请给出 kata 名（如 01_autograd）或练习名（KATA/FUNCTION，如 01_autograd/grad_at）"
RESET_NO_PRISTINE = (
    "katas/_harness/pristine_stubs.json 中没有 {path} 的原始副本；请从 torch-katas 仓库恢复该文件"
)
RESET_SYNTAX_ERROR = (
    "{path} 第 {line} 行有语法错误，无法定位单个函数；请先修正，或重置整个 kata：python -m katas reset {kata}"
)
RESET_MISSING_DEFINITION = (
    "你的文件里已经没有 {name} 了；重置整个 kata 可以找回它：python -m katas reset {kata}"
)

WATCH_HEADER = "torch-katas watch：{kata}  已完成 {done}/{total}   [第 {run} 次运行，{seconds:.2f} 秒]{state}"
WATCH_CHECKING = "  正在检查其余练习……"
WATCH_LAST_COUNT = "  （这是上一次能运行时的计数）"
WATCH_FOOTER = "正在监视 {folder}：保存文件即可重新运行，Ctrl-C 停止。"
WATCH_HINT = "卡住了？python -m katas hint {exercise}"
WATCH_PASSED = "✓ {exercise} 通过。"
WATCH_KATA_DONE = "✓ {kata} 的练习全部完成。"
WATCH_ALL_DONE = "所有 kata 的所有练习都完成了，恭喜！"
WATCH_STOPPED = "已停止监视。"
WATCH_TIMEOUT = "运行超过 {seconds:.0f} 秒，已被停止。代码里有死循环吗？保存后会重新运行。"
WATCH_CRASH_SIGNAL = "测试进程崩溃了（{signal}）。保存后会重新运行。"
WATCH_CRASH_EXIT = "测试进程没有给出结果就退出了（退出状态 {code}）：你的代码调用了 sys.exit() 或 os._exit() 吗？保存后会重新运行。"
WATCH_CUT = "……（还有 {count} 行；对这个 kata 运行 pytest 查看完整报告）"

HINT_LINE = "{exercise} 提示 {number}/{total}：{text}"
HINT_LAST = "这是最后一条提示了。课程讲解在 katas/{kata}/README.zh-CN.md。"
HINT_AMBIGUOUS = "'{name}' 不能唯一确定一个练习；你是不是想要：{names}？"
HINT_UNKNOWN = "没有名为 '{name}' 的练习；练习名的格式是 KATA/FUNCTION，例如 01_autograd/grad_at（完整列表见 katas/manifest.toml）"
HINT_KATA_DONE = (
    "上次运行时 {kata} 的练习已全部通过；要看某个练习的提示，请写明它：python -m katas hint {kata}/FUNCTION"
)
SOLUTION_HINT = "卡住了？python -m katas hint {exercise}"
SOLUTION_NOT_YET = "{exercise}：{total} 个测试中还有 {failing} 个没通过；全部通过后才显示参考答案。"
SOLUTION_NOT_RUN = "{exercise} 还没有通过（它的测试被跳过了）；通过后才显示参考答案。"
SOLUTION_BROKEN = "{path} 导入失败，{exercise} 还不可能通过；对这个 kata 运行 pytest 看看原因。"
SOLUTION_NOT_IN_HANDOUT = "这份发给学生的副本不含参考答案；测试通过后请向老师索取"
SOLUTION_PASSES = "{exercise} 已通过。对照一下你的代码和参考答案："
SOLUTION_YOURS = "--- 你的代码：{path}"
SOLUTION_REFERENCE = "--- 参考答案：{path}"
SOLUTION_MISSING = "（文件中没有找到）"
GUIDED_INTRO = (
    "torch-katas：引导模式。它现在就运行第一个未完成练习的测试，之后每次保存都重新运行；"
    "修改它指明的文件即可。按 Ctrl-C 退出。\n"
    "其他命令：python -m katas list | hint EXERCISE | solution EXERCISE | reset KATA_OR_EXERCISE "
    "| grade（全部命令见 python -m katas --help）"
)
WATCH_UNKNOWN_KATA = "没有名为 '{name}' 的 kata{close}（kata 列表：{names}）"
DID_YOU_MEAN_SUFFIX = "；你是不是想要：{names}？"
NEEDS_CHECKOUT = "{cwd} 不在 torch-katas 文件夹中：请先 cd 进入你克隆的 torch-katas 仓库（或课程发给你的副本），再运行这条命令"
ERROR_PREFIX = "错误："

VALUE_CALLED = "调用了 {call}。"
VALUE_SUBCLASS = "它返回了 {what}，这是 {base} 的子类；请返回普通的 {base}（测试会比较确切的类型）"
VALUE_OVERRIDES = (
    "它返回了 {what}，它的类定义了 {dunders}；请返回普通的值：浮点数、张量、列表（测试会比较确切的类型）"
)
VALUE_AT = "（位于 result{path}）"
VALUE_A = "{type}"
VALUE_AN = "{type}"
VALUE_YIELDED = "{call} 产出的第 {index} 项"
FORBIDDEN_CALLED = "它调用了 {shown}{seen}，而这个练习要求你自己实现它。"
FORBIDDEN_SEEN_AS = "（表现为 {op}）"
FORBIDDEN_SEEN_CODE = "（它的代码运行了，是通过另一个名字调用的）"
FORBIDDEN_UNWATCHED = (
    "这个练习禁止的库调用检查在运行时被关掉了，测试无法知道它调用了什么；请不要改动 sys.setprofile"
)
