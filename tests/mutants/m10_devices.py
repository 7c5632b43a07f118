"""Mistakes learners make in kata 10_devices."""

import math

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from tests.mutants import mutant

KATA = "10_devices"


# --- choose_device ---


@mutant(KATA, "choose_device", says="override was ignored")
def device_ignores_override(override=None):
    """Looks only at the hardware: the explicit override never wins."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@mutant(KATA, "choose_device", says="override was ignored")
def device_override_precedence(override=None):
    """`override or "cuda" if available else "cpu"`: the conditional swallows the override without CUDA."""
    return torch.device(override or "cuda" if torch.cuda.is_available() else "cpu")


@mutant(KATA, "choose_device", says="torch.device")
def device_as_string(override=None):
    """Returns the device's name, a string, instead of a torch.device."""
    if override is not None:
        return str(override)
    return "cuda" if torch.cuda.is_available() else "cpu"


_CUDA_AT_IMPORT = torch.cuda.is_available()


@mutant(KATA, "choose_device", says="import time")
def device_checked_once(override=None):
    """Asks torch.cuda.is_available() once, at import time, and reuses the stale answer."""
    if override is not None:
        return torch.device(override)
    return torch.device("cuda" if _CUDA_AT_IMPORT else "cpu")


# --- move_to ---


@mutant(KATA, "move_to", says="only some tensors were moved")
def move_top_level_only(batch, device, non_blocking=False):
    """Moves the tensors directly inside a dict or sequence, not the nested ones."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {
            k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()
        }
    if isinstance(batch, (list, tuple)):
        moved = [v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch


@mutant(KATA, "move_to", says="tuple was turned into a list")
def move_tuples_become_lists(batch, device, non_blocking=False):
    """Rebuilds every sequence as a list, so tuples and namedtuples lose their type."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: move_tuples_become_lists(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [move_tuples_become_lists(v, device, non_blocking) for v in batch]
    return batch


@mutant(KATA, "move_to", says="type(batch)(*values)")
def move_namedtuple_from_generator(batch, device, non_blocking=False):
    """Rebuilds every sequence with type(batch)(generator), which a namedtuple rejects."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: move_namedtuple_from_generator(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_namedtuple_from_generator(v, device, non_blocking) for v in batch)
    return batch


@mutant(KATA, "move_to", says="namedtuple")
def move_namedtuple_to_plain_tuple(batch, device, non_blocking=False):
    """Rebuilds tuples with tuple(...), so a namedtuple comes back as a plain tuple."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: move_namedtuple_to_plain_tuple(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(move_namedtuple_to_plain_tuple(v, device, non_blocking) for v in batch)
    if isinstance(batch, list):
        return [move_namedtuple_to_plain_tuple(v, device, non_blocking) for v in batch]
    return batch


@mutant(KATA, "move_to", says="non_blocking was not passed on")
def move_drops_non_blocking(batch, device, non_blocking=False):
    """Moves everything correctly but never passes non_blocking to Tensor.to."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: move_drops_non_blocking(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_drops_non_blocking(v, device, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_drops_non_blocking(v, device, non_blocking) for v in batch)
    return batch


@mutant(KATA, "move_to", says="only some tensors were moved")
def move_in_place_rebinding(batch, device, non_blocking=False):
    """Calls tensor.to(device) as if it moved the tensor in place, and returns the batch unchanged."""

    def visit(value):
        if isinstance(value, torch.Tensor):
            value.to(device, non_blocking=non_blocking)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)

    visit(batch)
    return batch


# --- causal_mask ---


@mutant(KATA, "causal_mask", says="default device")
def mask_on_default_device(scores):
    """Creates the mask with torch.full and no device= (nor dtype=): the CPU, float32."""
    size = scores.shape[-1]
    return torch.full((size, size), float("-inf")).triu(diagonal=1)


@mutant(KATA, "causal_mask", says="default dtype")
def mask_device_but_not_dtype(scores):
    """Passes device=scores.device but forgets the dtype, so bfloat16 scores get a float32 mask."""
    size = scores.shape[-1]
    return torch.full((size, size), float("-inf"), device=scores.device).triu(diagonal=1)


@mutant(KATA, "causal_mask", says="0 * -inf is NaN")
def mask_by_multiplying_inf(scores):
    """Multiplies a 0/1 triangle by -inf: 0 * -inf is NaN below the diagonal."""
    size = scores.shape[-1]
    return torch.ones(size, size, device=scores.device, dtype=scores.dtype).triu(diagonal=1) * float("-inf")


@mutant(KATA, "causal_mask", says="diagonal is masked too")
def mask_hides_the_diagonal(scores):
    """Uses triu() without diagonal=1, so each position cannot attend to itself."""
    size = scores.shape[-1]
    return scores.new_full((size, size), float("-inf")).triu()


@mutant(KATA, "causal_mask", says="past is masked instead of the future")
def mask_lower_triangle(scores):
    """Masks below the diagonal (tril) instead of above it."""
    size = scores.shape[-1]
    return scores.new_full((size, size), float("-inf")).tril(diagonal=-1)


# --- Standardize ---


class _PlainAttributes(nn.Module):
    """Stores mean and std as plain attributes: .to() and state_dict() never see them."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean = mean
        self.std = std

    def forward(self, x):
        return (x - self.mean) / self.std


@mutant(KATA, "Standardize", says="plain attribute")
def standardize_plain_attributes(mean, std):
    """Stores mean and std as plain attributes (not registered): they stay behind on .to()."""
    return _PlainAttributes(mean, std)


class _Parameters(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.mean = nn.Parameter(mean.clone())
        self.std = nn.Parameter(std.clone())

    def forward(self, x):
        return (x - self.mean) / self.std


@mutant(KATA, "Standardize", says="nn.Parameters")
def standardize_as_parameters(mean, std):
    """Makes mean and std nn.Parameters: moved and saved, but an optimizer would train them."""
    return _Parameters(mean, std)


class _NotPersistent(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", mean.clone(), persistent=False)
        self.register_buffer("std", std.clone(), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std


@mutant(KATA, "Standardize", says="persistent=False")
def standardize_not_persistent(mean, std):
    """Registers non-persistent buffers: moved with the model but missing from state_dict()."""
    return _NotPersistent(mean, std)


# --- model_size ---


@mutant(KATA, "model_size", says="materialised")
def size_on_the_cpu(build):
    """Builds the model for real on the default device (the CPU) and counts it."""
    model = build()
    tensors = [*model.parameters(), *model.buffers()]
    return sum(p.numel() for p in model.parameters()), sum(t.numel() * t.element_size() for t in tensors)


@mutant(KATA, "model_size", says="state_dict() lists a tied weight")
def size_from_state_dict(build):
    """Counts state_dict() values: a tied weight twice, and buffers as parameters."""
    with torch.device("meta"):
        state = build().state_dict()
    return sum(t.numel() for t in state.values()), sum(t.numel() * t.element_size() for t in state.values())


@mutant(KATA, "model_size", says="4 bytes")
def size_assumes_float32(build):
    """Assumes 4 bytes per element, whatever each tensor's dtype."""
    with torch.device("meta"):
        model = build()
    tensors = [*model.parameters(), *model.buffers()]
    return sum(p.numel() for p in model.parameters()), 4 * sum(t.numel() for t in tensors)


@mutant(KATA, "model_size", says="buffers' bytes are missing")
def size_without_buffers(build):
    """Counts the parameters' bytes and forgets the buffers (BatchNorm statistics, position tables)."""
    with torch.device("meta"):
        model = build()
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)


@mutant(KATA, "model_size", says="materialised")
def size_then_materialise(build):
    """Builds on meta, then calls to_empty(device="cpu") before counting: real memory after all."""
    with torch.device("meta"):
        model = build()
    if sum(p.numel() for p in model.parameters()) < 10**8:
        model.to_empty(device="cpu")
    tensors = [*model.parameters(), *model.buffers()]
    return sum(p.numel() for p in model.parameters()), sum(t.numel() * t.element_size() for t in tensors)


# --- autocast_forward ---


@mutant(KATA, "autocast_forward", says="permanently")
def autocast_converts_the_model(model, x):
    """Converts the model and input to bfloat16 instead of using autocast."""
    model.to(torch.bfloat16)
    return model(x.to(torch.bfloat16))


@mutant(KATA, "autocast_forward", says="device_type")
def autocast_for_cuda_only(model, x):
    """Hard-codes device_type="cuda", which does nothing for CPU tensors."""
    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=torch.cuda.is_available()):
        return model(x)


@mutant(KATA, "autocast_forward", says="CUDA's autocast dtype")
def autocast_float16_everywhere(model, x):
    """Uses float16, CUDA's autocast dtype, on the CPU too."""
    with torch.autocast(device_type=x.device.type, dtype=torch.float16):
        return model(x)


@mutant(KATA, "autocast_forward", says="cast back")
def autocast_then_float(model, x):
    """Casts the autocast output back to float32 before returning it."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
        return model(x).float()


# --- strip_module_prefix ---


@mutant(KATA, "strip_module_prefix", says="str.replace")
def strip_with_replace(state_dict):
    """Uses str.replace, which also removes 'module.' from the middle of keys."""
    return {k.replace("module.", ""): v for k, v in state_dict.items()}


@mutant(KATA, "strip_module_prefix", says="lstrip")
def strip_with_lstrip(state_dict):
    """Uses str.lstrip('module.'), which strips characters, not a prefix."""
    return {k.lstrip("module."): v for k, v in state_dict.items()}


@mutant(KATA, "strip_module_prefix", says="first 7 characters")
def strip_seven_characters(state_dict):
    """Cuts 7 characters from every key, prefixed or not."""
    return {k[7:]: v for k, v in state_dict.items()}


@mutant(KATA, "strip_module_prefix", says="up to the first dot", everywhere=True)
def strip_split_on_first_dot(state_dict):
    """Drops everything up to the first dot of every key, prefixed or not."""
    return {k.split(".", 1)[-1]: v for k, v in state_dict.items()}


# --- ddp_gradients ---


@mutant(KATA, "ddp_gradients", says="summed over the 2 ranks")
def ddp_all_reduce_sum(model, inputs, targets):
    """All-reduces gradients by hand and forgets to divide by the world size."""
    nn.functional.mse_loss(model(inputs), targets).backward()
    for p in model.parameters():
        dist.all_reduce(p.grad)
    return {name: p.grad for name, p in model.named_parameters()}


@mutant(KATA, "ddp_gradients", says="own shard")
def ddp_never_wraps(model, inputs, targets):
    """Never wraps the model: each rank keeps the gradient of its own shard."""
    nn.functional.mse_loss(model(inputs), targets).backward()
    return {name: p.grad for name, p in model.named_parameters()}


@mutant(KATA, "ddp_gradients", says="forward pass through the wrapper")
def ddp_forward_bypasses_wrapper(model, inputs, targets):
    """Wraps the model but calls the plain model in the forward pass, so DDP never syncs gradients."""
    DistributedDataParallel(model)
    nn.functional.mse_loss(model(inputs), targets).backward()
    return {name: p.grad for name, p in model.named_parameters()}


@mutant(KATA, "ddp_gradients", says="reduction='sum'")
def ddp_summed_loss(model, inputs, targets):
    """Sums the loss over the shard instead of averaging it."""
    ddp = DistributedDataParallel(model)
    nn.functional.mse_loss(ddp(inputs), targets, reduction="sum").backward()
    return {name: p.grad for name, p in model.named_parameters()}


@mutant(KATA, "ddp_gradients", says="'module.'")
def ddp_wrapper_names(model, inputs, targets):
    """Returns the gradients under the wrapper's names, prefixed with 'module.'."""
    ddp = DistributedDataParallel(model)
    nn.functional.mse_loss(ddp(inputs), targets).backward()
    return {name: p.grad for name, p in ddp.named_parameters()}


@mutant(KATA, "ddp_gradients", says="broadcasts rank 0's")
def ddp_manual_average(model, inputs, targets):
    """Averages gradients with a hand-written all_reduce: right numbers, but replicas never start equal."""
    nn.functional.mse_loss(model(inputs), targets).backward()
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= dist.get_world_size()
    return {name: p.grad for name, p in model.named_parameters()}


# --- shard_loader ---


def _rank_and_size(num_replicas, rank):
    num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
    return num_replicas, dist.get_rank() if rank is None else rank


@mutant(KATA, "shard_loader", says="no rank offset")
def shard_without_rank_offset(dataset, batch_size, epoch, seed=0, num_replicas=None, rank=None):
    """Shuffles and takes the first share on every rank: the same items everywhere."""
    num_replicas, rank = _rank_and_size(num_replicas, rank)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    share = math.ceil(len(dataset) / num_replicas)
    return DataLoader(Subset(dataset, (order * num_replicas)[:share]), batch_size=batch_size)


@mutant(KATA, "shard_loader", says="set_epoch")
def shard_without_set_epoch(dataset, batch_size, epoch, seed=0, num_replicas=None, rank=None):
    """Forgets sampler.set_epoch(epoch): every epoch replays the same order."""
    sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)


@mutant(KATA, "shard_loader", says="same seed")
def shard_seed_per_rank(dataset, batch_size, epoch, seed=0, num_replicas=None, rank=None):
    """Seeds each rank's shuffle differently (seed + rank), so the slices overlap."""
    num_replicas, rank = _rank_and_size(num_replicas, rank)
    sampler = DistributedSampler(
        dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed + rank
    )
    sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)


@mutant(KATA, "shard_loader", says="no DistributedSampler")
def shard_with_plain_shuffle(dataset, batch_size, epoch, seed=0, num_replicas=None, rank=None):
    """Uses DataLoader(shuffle=True) alone: every rank reads the whole dataset."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=True)


@mutant(KATA, "shard_loader", says="drop_last")
def shard_drop_last(dataset, batch_size, epoch, seed=0, num_replicas=None, rank=None):
    """Passes drop_last=True to the sampler: items at the tail are never read."""
    sampler = DistributedSampler(
        dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)
