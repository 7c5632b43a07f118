"""PyTorch errors that learners meet again and again, and what usually causes them."""

from __future__ import annotations

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
        "in-place updates of parameters must not be recorded by autograd: wrap them in "
        "`with torch.no_grad():`.",
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
        "only Tensors of floating point",
        "only floating-point (and complex) tensors can require gradients: create it with "
        "dtype=torch.float32 or float64, e.g. torch.tensor(2.0) rather than torch.tensor(2).",
    ),
)


def likely_cause(message: str) -> str | None:
    for fragment, cause in KNOWN_ERRORS:
        if fragment in message:
            return cause
    return None
