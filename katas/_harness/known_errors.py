"""PyTorch errors that learners meet again and again, and what usually causes them."""

from __future__ import annotations

from . import language

# (fragment of the error message, what the learner most likely did and how to fix it)
KNOWN_ERRORS: tuple[tuple[str, str], ...] = (
    (
        "does not require grad and does not have a grad_fn",
        "backward() or autograd.grad() reached a tensor that autograd never tracked. "
        "Create the input with requires_grad=True (or call .requires_grad_()), and make sure "
        "the computation is not inside torch.no_grad() or cut by .detach(). To differentiate a "
        "gradient again, the first torch.autograd.grad() call needs create_graph=True.",
    ),
    (
        "Trying to backward through the graph a second time",
        "the first backward() freed the graph's saved tensors. Pass retain_graph=True to every "
        "backward() except the last one that goes through the same graph.",
    ),
    (
        "grad can be implicitly created only for scalar outputs",
        "backward() without arguments needs a scalar. For a non-scalar output pass "
        "gradient=v (a vector-Jacobian product), or reduce the output to a scalar first.",
    ),
    (
        "a leaf Variable that requires grad is being used in an in-place operation",
        "an in-place operation (+=, *=, clamp_, ...) on a leaf that requires grad. To update "
        "parameters by hand, wrap the update in `with torch.no_grad():`; in a forward pass, use the "
        "out-of-place form instead (y = y * 2, not y *= 2).",
    ),
    (
        "has been modified by an inplace operation",
        "a tensor that autograd saved for backward was changed in place before backward(). "
        "Use an out-of-place operation (x = x * 2 instead of x *= 2) or clone() first.",
    ),
    (
        "One of the differentiated Tensors appears to not have been used in the graph",
        "torch.autograd.grad() was asked for the gradient of an input the output does not "
        "depend on; pass allow_unused=True or differentiate with respect to the right tensor.",
    ),
    (
        "'NoneType' object has no attribute 'zero_'",
        "a .grad is None until the first backward() reaches that tensor, so there is nothing to "
        "zero yet. Zero only when it exists (`if t.grad is not None: t.grad.zero_()`) or reset it "
        "with `t.grad = None`, which backward() then fills afresh.",
    ),
    (
        "'NoneType' object has no attribute",
        "if that None was a .grad: only leaf tensors keep .grad after backward(). Call "
        ".retain_grad() on an intermediate tensor before backward(), and check that the tensor "
        "took part in the computation at all.",
    ),
    (
        "Can't call numpy() on Tensor that requires grad",
        "call .detach() before .numpy(), or use .item() for a single number.",
    ),
    (
        "view size is not compatible with input tensor's size and stride",
        "view() never copies, so it needs memory laid out for the new shape; a transposed or "
        "sliced tensor is not. Use reshape() (it copies only when it must) or call .contiguous() first.",
    ),
    (
        "must match the size of tensor",
        "two shapes do not broadcast: aligned from the right, each pair of sizes must be equal or "
        "one of them 1. Print the shapes, and add a size-1 axis with unsqueeze() or x[:, None] where needed.",
    ),
    (
        "Expected all tensors to be on the same device",
        "the tensors of one operation live on different devices. Create new tensors on the "
        "input's device (torch.zeros(..., device=x.device) or x.new_zeros(...)) and move the model "
        "and the batch with .to(device).",
    ),
    (
        "Boolean value of Tensor with more than one value is ambiguous",
        "Python's `if`, `and`, `or` and `not` need one True or False, and a batch holds many. "
        "Choose per element with torch.where(condition, a, b), or reduce first with .any() / .all().",
    ),
    (
        "before Module.__init__() call",
        "an nn.Module subclass must call super().__init__() first thing in its __init__, before "
        "it assigns any layer, parameter or buffer.",
    ),
    (
        "only Tensors of floating point",
        "only floating-point (and complex) tensors can require gradients: create it with "
        "dtype=torch.float32 or float64, e.g. torch.tensor(2.0) rather than torch.tensor(2).",
    ),
)


# The same causes in Chinese, by fragment; tests/test_languages.py keeps the two tables in step.
KNOWN_ERRORS_ZH: dict[str, str] = {
    "does not require grad and does not have a grad_fn": (
        "backward() 或 autograd.grad() 遇到了一个 autograd 从未追踪的张量。创建输入时加上 "
        "requires_grad=True（或调用 .requires_grad_()），并确认计算不在 torch.no_grad() 里、"
        "也没有被 .detach() 阻断。要对梯度再求导，第一次 torch.autograd.grad() 需要 create_graph=True。"
    ),
    "Trying to backward through the graph a second time": (
        "第一次 backward() 已经释放了计算图保存的张量。对同一张图的每次 backward() 都传入 "
        "retain_graph=True，只有最后一次除外。"
    ),
    "grad can be implicitly created only for scalar outputs": (
        "不带参数的 backward() 只能用于标量。非标量输出请传入 gradient=v（向量-雅可比积），"
        "或先把输出归约成标量。"
    ),
    "a leaf Variable that requires grad is being used in an in-place operation": (
        "对一个要求梯度的叶子张量做了原地运算（+=、*=、clamp_ 等）。手动更新参数时，把更新放进 "
        "`with torch.no_grad():`；在前向传播里则改用非原地写法（y = y * 2，而不是 y *= 2）。"
    ),
    "has been modified by an inplace operation": (
        "autograd 为反向传播保存的张量在 backward() 之前被原地修改了。改用非原地运算"
        "（x = x * 2 而不是 x *= 2），或先 clone()。"
    ),
    "One of the differentiated Tensors appears to not have been used in the graph": (
        "torch.autograd.grad() 被要求对一个输出并不依赖的输入求梯度；传入 allow_unused=True，"
        "或对正确的张量求导。"
    ),
    "'NoneType' object has no attribute 'zero_'": (
        "在第一次 backward() 到达某个张量之前，它的 .grad 是 None，此时没有可清零的东西。"
        "只在它存在时清零（`if t.grad is not None: t.grad.zero_()`），或用 `t.grad = None` 重置，"
        "之后 backward() 会重新填入。"
    ),
    "'NoneType' object has no attribute": (
        "如果这个 None 是某个 .grad：backward() 之后只有叶子张量保留 .grad。在 backward() 之前"
        "对中间张量调用 .retain_grad()，并确认这个张量确实参与了计算。"
    ),
    "Can't call numpy() on Tensor that requires grad": "先调用 .detach() 再 .numpy()，单个数用 .item()。",
    "view size is not compatible with input tensor's size and stride": (
        "view() 从不复制数据，所以内存布局必须适合新形状；转置或切片后的张量不满足。"
        "改用 reshape()（只在必要时复制），或先调用 .contiguous()。"
    ),
    "must match the size of tensor": (
        "两个形状无法广播：从右往左对齐后，每一对维度必须相等或其中一个为 1。打印形状，"
        "在需要的地方用 unsqueeze() 或 x[:, None] 加一个大小为 1 的维度。"
    ),
    "Expected all tensors to be on the same device": (
        "同一个运算里的张量在不同设备上。新张量要建在输入所在的设备上（torch.zeros(..., device=x.device) "
        "或 x.new_zeros(...)），并用 .to(device) 移动模型和批数据。"
    ),
    "Boolean value of Tensor with more than one value is ambiguous": (
        "Python 的 if、and、or、not 需要一个确定的 True 或 False，而一个批次里有很多个值。"
        "用 torch.where(condition, a, b) 逐元素选择，或先用 .any() / .all() 归约。"
    ),
    "before Module.__init__() call": (
        "nn.Module 的子类必须在 __init__ 的第一行调用 super().__init__()，"
        "然后才能给任何层、参数或缓冲区赋值。"
    ),
    "only Tensors of floating point": (
        "只有浮点（和复数）张量可以要求梯度：用 dtype=torch.float32 或 float64 创建，"
        "例如 torch.tensor(2.0) 而不是 torch.tensor(2)。"
    ),
}


def likely_cause(message: str) -> str | None:
    chinese = language.current() == "zh"
    for fragment, cause in KNOWN_ERRORS:
        if fragment in message:
            return KNOWN_ERRORS_ZH.get(fragment, cause) if chinese else cause
    return None
