"""Mistakes learners make in kata 04_modules."""

import copy
import math
from itertools import pairwise

import torch
from torch import nn

from tests.mutants import mutant

KATA = "04_modules"


# --- SimpleNet ---


@mutant(KATA, "SimpleNet", says="super().__init__()")
class SimpleNetWithoutSuper(nn.Module):
    """Forgets super().__init__(), so assigning the first layer fails."""

    def __init__(self):
        self.fc1 = nn.Linear(2, 4)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


@mutant(KATA, "SimpleNet", says="skips the ReLU")
class SimpleNetWithoutRelu(nn.Module):
    """Registers the ReLU but never applies it: the network is one affine map."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 4)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc2(self.fc1(x))


@mutant(KATA, "SimpleNet", says="ReLU comes after fc2")
class SimpleNetReluLast(nn.Module):
    """Applies the ReLU after fc2 instead of between the layers."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 4)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(4, 1)

    def forward(self, x):
        return self.relu(self.fc2(self.fc1(x)))


@mutant(KATA, "SimpleNet", says="no parameter is registered", everywhere=True)
class SimpleNetLayersInForward(nn.Module):
    """Creates the layers inside forward: new random weights on every call, none registered."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return nn.Linear(4, 1)(torch.relu(nn.Linear(2, 4)(x)))


@mutant(KATA, "SimpleNet", says="created in forward()", everywhere=True)
class SimpleNetOutputLayerInForward(nn.Module):
    """Registers fc1 in __init__ but builds the output layer inside forward: new weights every call."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 4)
        self.relu = nn.ReLU()

    def forward(self, x):
        fc2 = nn.Linear(4, 1)
        return fc2(self.relu(self.fc1(x)))


# --- to_sequential ---


@mutant(KATA, "to_sequential", says="wrong order")
def to_sequential_relu_last(net):
    """Puts the ReLU after the last Linear."""
    twin = nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 1), nn.ReLU())
    twin[0].load_state_dict(net.fc1.state_dict())
    twin[1].load_state_dict(net.fc2.state_dict())
    return twin


@mutant(KATA, "to_sequential", says="ReLU after the last layer")
def to_sequential_extra_relu(net):
    """Copies the layers in the right order but ends the Sequential with one more ReLU."""
    twin = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1), nn.ReLU())
    twin[0].load_state_dict(net.fc1.state_dict())
    twin[2].load_state_dict(net.fc2.state_dict())
    return twin


@mutant(KATA, "to_sequential", says="not copied")
def to_sequential_fresh_weights(net):
    """Builds the right layers but never copies net's weights into them."""
    return nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))


@mutant(KATA, "to_sequential", says="shares net's layers")
def to_sequential_shares_layers(net):
    """Reuses net's own layer objects, so training the twin trains net."""
    return nn.Sequential(net.fc1, net.relu, net.fc2)


# --- LinearFromScratch ---


@mutant(KATA, "LinearFromScratch", says="nn.Parameter")
class LinearPlainTensors(nn.Module):
    """Uses tensors with requires_grad=True instead of nn.Parameter: nothing is registered."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        k = 1 / math.sqrt(in_features)
        self.weight = torch.empty(out_features, in_features).uniform_(-k, k).requires_grad_()
        self.bias = torch.empty(out_features).uniform_(-k, k).requires_grad_() if bias else None

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias


@mutant(KATA, "LinearFromScratch", says="self.weight.T")
class LinearNotTransposed(nn.Module):
    """Stores the weight as (out, in) like nn.Linear but computes x @ W, without the transpose."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        k = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-k, k))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-k, k)) if bias else None

    def forward(self, x):
        y = x @ self.weight
        return y if self.bias is None else y + self.bias


@mutant(KATA, "LinearFromScratch", says="super().__init__()")
class LinearWithoutSuper(nn.Module):
    """Forgets super().__init__(), so assigning the first Parameter fails."""

    def __init__(self, in_features, out_features, bias=True):
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / math.sqrt(in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias


@mutant(KATA, "LinearFromScratch", says="leaves out the bias")
class LinearIgnoresBias(nn.Module):
    """Registers a bias but forgets to add it in forward."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        k = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-k, k))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-k, k)) if bias else None

    def forward(self, x):
        return x @ self.weight.T


@mutant(KATA, "LinearFromScratch", says="starts constant")
class LinearZeroInit(nn.Module):
    """Starts the weight at zeros: every output unit computes and learns the same thing."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias


@mutant(KATA, "LinearFromScratch", says="leading dimensions")
class LinearWithMm(nn.Module):
    """Uses torch.mm, which takes only 2-D inputs, where nn.Linear accepts any leading dimensions."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        k = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-k, k))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-k, k)) if bias else None

    def forward(self, x):
        y = torch.mm(x, self.weight.T)
        return y if self.bias is None else y + self.bias


# --- count_parameters ---


@mutant(KATA, "count_parameters", says="frozen ones are parameters too")
def count_only_trainable(model):
    """Counts only trainable parameters where the total is asked for."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, trainable


@mutant(KATA, "count_parameters", says="tensors, not values")
def count_tensors(model):
    """Counts parameter tensors instead of the numbers they hold."""
    params = list(model.parameters())
    return len(params), sum(1 for p in params if p.requires_grad)


@mutant(KATA, "count_parameters", says="state_dict() also holds buffers")
def count_state_dict(model):
    """Counts state_dict() values: buffers included, tied weights twice."""
    state = model.state_dict(keep_vars=True)
    total = sum(v.numel() for v in state.values())
    return total, sum(v.numel() for v in state.values() if v.requires_grad)


# --- freeze_ ---


@mutant(KATA, "freeze_", says="p.grad = None")
def freeze_by_clearing_grad(module):
    """Sets .grad to None, which the next backward() fills again."""
    for p in module.parameters():
        p.grad = None


@mutant(KATA, "freeze_", says="eval() does not freeze")
def freeze_by_eval(module):
    """Calls module.eval(), which changes dropout and batch norm, not training."""
    module.eval()


@mutant(KATA, "freeze_", says="only sets a Python attribute")
def freeze_module_attribute(module):
    """Writes module.requires_grad = False: a plain attribute on the module, no parameter changes."""
    module.requires_grad = False


@mutant(KATA, "freeze_", says="children()")
def freeze_children_only(module):
    """Freezes module.children(), which misses a layer's own weight and bias."""
    for child in module.children():
        child.requires_grad_(False)


@mutant(KATA, "freeze_", says="a copy", everywhere=True)
def freeze_a_copy(module):
    """Deep-copies the module to avoid side effects and freezes the copy; the caller's module trains on."""
    frozen = copy.deepcopy(module)
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


# --- RunningMean ---


class _RunningMeanBase(nn.Module):
    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.lerp_(x.mean(dim=0), self.momentum)
                self.num_batches += 1
        return x - self.running_mean


@mutant(KATA, "RunningMean", says="register_buffer")
class RunningMeanFrozenParameter(_RunningMeanBase):
    """Keeps the statistics in nn.Parameter(requires_grad=False): still listed in parameters()."""

    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.running_mean = nn.Parameter(torch.zeros(num_features), requires_grad=False)
        self.num_batches = nn.Parameter(torch.tensor(0), requires_grad=False)


@mutant(KATA, "RunningMean", says="plain attribute")
class RunningMeanPlainAttribute(_RunningMeanBase):
    """Keeps running_mean as a plain tensor attribute: not saved, not moved by .to()."""

    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.running_mean = torch.zeros(num_features)
        self.register_buffer("num_batches", torch.tensor(0))


@mutant(KATA, "RunningMean", says="step counter")
class RunningMeanIntCounter(nn.Module):
    """Counts batches in a Python int, which state_dict() does not save."""

    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.num_batches = 0

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.lerp_(x.mean(dim=0), self.momentum)
            self.num_batches += 1
        return x - self.running_mean


class _RunningMeanBuffers(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("num_batches", torch.tensor(0))


@mutant(KATA, "RunningMean", says="eval mode must not update")
class RunningMeanUpdatesInEval(_RunningMeanBuffers):
    """Updates the statistics in eval mode too."""

    def forward(self, x):
        with torch.no_grad():
            self.running_mean.lerp_(x.mean(dim=0), self.momentum)
            self.num_batches += 1
        return x - self.running_mean


@mutant(KATA, "RunningMean", says="torch.no_grad()")
class RunningMeanInGraph(_RunningMeanBuffers):
    """Updates the buffer with autograd recording: it joins the graph of every batch."""

    def forward(self, x):
        if self.training:
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * x.mean(dim=0)
            self.num_batches += 1
        return x - self.running_mean


@mutant(KATA, "RunningMean", says="momentum weights the new batch")
class RunningMeanMomentumReversed(_RunningMeanBuffers):
    """Weights the old mean by momentum and the new batch by 1 - momentum."""

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.lerp_(x.mean(dim=0), 1 - self.momentum)
                self.num_batches += 1
        return x - self.running_mean


@mutant(KATA, "RunningMean", says="update first")
class RunningMeanStaleOutput(_RunningMeanBuffers):
    """Subtracts the mean from before the update."""

    def forward(self, x):
        out = x - self.running_mean.clone()
        if self.training:
            with torch.no_grad():
                self.running_mean.lerp_(x.mean(dim=0), self.momentum)
                self.num_batches += 1
        return out


# --- MLP ---


@mutant(KATA, "MLP", says="plain Python list")
class MLPPythonList(nn.Module):
    """Keeps the layers in a plain Python list, invisible to parameters() and state_dict()."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = [nn.Linear(a, b) for a, b in pairwise(sizes)]

    def forward(self, x):
        *hidden, last = self.layers
        for layer in hidden:
            x = torch.relu(layer(x))
        return last(x)


class _MLPLayers(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))


@mutant(KATA, "MLP", says="ReLU after the last layer", everywhere=True)
class MLPReluEverywhere(_MLPLayers):
    """Applies a ReLU after every layer, the last included: the output cannot go negative."""

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x


@mutant(KATA, "MLP", says="no ReLU between")
class MLPWithoutRelu(_MLPLayers):
    """Stacks the layers without any ReLU: the whole network collapses to one affine map."""

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


@mutant(KATA, "MLP", says="created in forward()", everywhere=True)
class MLPOutputLayerInForward(nn.Module):
    """Registers the hidden layers but creates the output layer inside forward."""

    def __init__(self, sizes):
        super().__init__()
        self.sizes = list(sizes)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(self.sizes[:-1]))

    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return nn.Linear(self.sizes[-2], self.sizes[-1])(x)


# --- predict ---


@mutant(KATA, "predict", says="model.eval()")
def predict_without_eval(model, x):
    """Only disables gradients: dropout and batch norm stay in training mode."""
    with torch.no_grad():
        return model(x)


@mutant(KATA, "predict", says="never undone", everywhere=True)
def predict_leaves_eval_on(model, x):
    """Switches to eval mode and never switches back."""
    model.eval()
    with torch.no_grad():
        return model(x)


@mutant(KATA, "predict", says="restore the previous mode")
def predict_always_back_to_train(model, x):
    """Calls model.train() afterwards, even when the model was in eval mode before."""
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train()


@mutant(KATA, "predict", says="each submodule")
def predict_restores_one_flag(model, x):
    """Restores with model.train(was_training), flattening a mix of modes."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train(was_training)


@mutant(KATA, "predict", says="torch.no_grad()")
def predict_with_graph(model, x):
    """Switches to eval mode but lets autograd record the forward pass."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        return model(x)
    finally:
        for m, training in modes.items():
            m.training = training


@mutant(KATA, "predict", says="finally")
def predict_without_finally(model, x):
    """Restores the modes only when the forward pass succeeds."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    with torch.no_grad():
        out = model(x)
    for m, training in modes.items():
        m.training = training
    return out


# --- init_weights_ ---


def _he_(m):
    nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
    if m.bias is not None:
        nn.init.zeros_(m.bias)


@mutant(KATA, "init_weights_", says="nested")
def init_direct_children_only(model):
    """Loops over model.children(), missing Linear layers inside nested containers."""
    for m in model.children():
        if isinstance(m, nn.Linear):
            _he_(m)


@mutant(KATA, "init_weights_", says="bias was left out")
def init_forgets_bias(model):
    """Initialises the weights but leaves the biases at their default random values."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")


@mutant(KATA, "init_weights_", says="Xavier")
def init_xavier(model):
    """Uses Xavier initialisation, whose std also depends on fan_out."""

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    model.apply(init)


@mutant(KATA, "init_weights_", says="fan_out")
def init_fan_out(model):
    """Uses Kaiming with mode='fan_out'."""

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    model.apply(init)


@mutant(KATA, "init_weights_", says="only nn.Linear")
def init_every_matrix(model):
    """Initialises every parameter: He for 2-D ones, zeros for the rest, embeddings and norms included."""
    for p in model.parameters():
        if p.dim() >= 2:
            nn.init.kaiming_uniform_(p, nonlinearity="relu")
        else:
            nn.init.zeros_(p)


@mutant(KATA, "init_weights_", says="in place")
def init_new_parameters(model):
    """Replaces weight and bias with new nn.Parameter objects an optimizer built earlier never sees."""

    def init(m):
        if isinstance(m, nn.Linear):
            weight = torch.empty_like(m.weight)
            nn.init.kaiming_uniform_(weight, nonlinearity="relu")
            m.weight = nn.Parameter(weight)
            if m.bias is not None:
                m.bias = nn.Parameter(torch.zeros_like(m.bias))

    model.apply(init)


@mutant(KATA, "init_weights_", says="bias None")
def init_assumes_bias(model):
    """Zeroes m.bias without checking for a Linear built with bias=False."""

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)

    model.apply(init)
