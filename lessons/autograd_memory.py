"""How much memory autograd holds for the backward pass: the tensors saved in the graph, live and at peak.

On a CPU, PyTorch's allocator keeps no statistics (torch.cuda.max_memory_allocated is GPU only) and
Python's tracemalloc does not see it. What differs between backpropagating through an ODE solver and
the adjoint method is the graph: every operation of every solver step saves tensors for backward.
SavedTensorMeter counts exactly those, through torch.autograd.graph.saved_tensors_hooks: a tensor
is counted (once per storage, however many operations save it) from the moment autograd saves it
until the graph that holds it is freed. Parameters and inputs saved by the graph are counted too.
"""

import torch


class _Held:
    """A saved tensor, handed back to autograd on unpack; tells the meter when the graph drops it."""

    __slots__ = ("tensor", "key", "meter")

    def __init__(self, meter, tensor, key):
        self.tensor, self.key, self.meter = tensor, key, meter

    def __del__(self):
        self.meter._release(self.key)


class SavedTensorMeter:
    """Context manager: bytes of tensors autograd keeps for backward (live_bytes now, peak_bytes at most).

    with SavedTensorMeter() as meter:
        loss = f(params); loss.backward()
    meter.peak_bytes  # the most memory the graphs held at once, forward and backward included
    Run backward inside the block when backward itself builds graphs (the adjoint method does).
    A meter may be entered again after its block ends: it goes on counting from where it stopped.
    """

    def __init__(self):
        self.live_bytes, self.peak_bytes = 0, 0
        self._storages = {}  # storage key -> [bytes, number of saved references]
        self._hooks = None

    def __enter__(self) -> "SavedTensorMeter":
        if self._hooks is not None:
            raise ValueError(
                "this SavedTensorMeter is already measuring (a with block inside its own with block); "
                "use a new SavedTensorMeter() for the inner block."
            )
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        if self._hooks is None:
            raise ValueError(
                "SavedTensorMeter was exited without being entered; use it as `with SavedTensorMeter() as m:`."
            )
        hooks, self._hooks = self._hooks, None
        hooks.__exit__(*exc)
        return False

    @property
    def peak_megabytes(self) -> float:
        """peak_bytes in MiB (2**20 bytes)."""
        return self.peak_bytes / 2**20

    def _pack(self, tensor):
        storage = tensor.untyped_storage()
        key = (tensor.device.type, tensor.device.index, storage.data_ptr())
        entry = self._storages.setdefault(key, [storage.nbytes(), 0])
        if entry[1] == 0:
            self.live_bytes += entry[0]
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        entry[1] += 1
        # keep a detached alias: holding the tensor itself (with its grad_fn) would make a reference
        # cycle through autograd's C++ graph that Python's garbage collector cannot break
        return _Held(self, tensor.detach(), key)

    @staticmethod
    def _unpack(held):
        return held.tensor

    def _release(self, key):
        entry = self._storages.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live_bytes -= entry[0]
            del self._storages[key]
