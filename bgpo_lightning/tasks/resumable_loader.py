"""A shuffling training DataLoader that Lightning can resume mid-epoch.

Lightning saves ``state_dict()`` of a train loader that has one in the checkpoint (under
``loops.fit_loop.state_dict.combined_loader``) and calls ``load_state_dict()`` on the fresh loader
before the resumed epoch's iterator runs; it does not skip any batches itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler


class ResumableSampler(DistributedSampler):
    """This rank's share of a permutation that is a pure function of ``(seed, epoch)``.

    A :class:`DistributedSampler` so that Lightning keeps it under DDP/FSDP: Lightning only swaps
    in its own sampler (re-creating the loader from its ``__init__`` arguments) when the current
    one is not a ``DistributedSampler``. The rank split is ``DistributedSampler``'s own; the
    permutation is the one a plain ``DataLoader(shuffle=True, generator=manual_seed(seed))``
    gives in its ``epoch``-th pass, which the published results were trained with.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.start = 0  # indices of this epoch already consumed; the next pass skips them

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0  # a skip belongs to the epoch it was loaded for
        super().set_epoch(epoch)

    def permutation(self) -> list[int]:
        """The epoch's order, replayed from the seed rather than from a generator's state."""
        generator = torch.Generator().manual_seed(self.seed)
        n = len(self.dataset)
        for _ in range(self.epoch):  # the draws a plain shuffled DataLoader makes per pass:
            torch.empty((), dtype=torch.int64).random_(generator=generator)  # iterator seed
            torch.randperm(n, generator=generator)  # the pass's order
            torch.randperm(n, generator=generator)  # RandomSampler's (empty) remainder
        torch.empty((), dtype=torch.int64).random_(generator=generator)
        return torch.randperm(n, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        indices = self.permutation()
        padding = self.total_size - len(indices)
        if padding > 0:  # as DistributedSampler: every rank gets as many indices
            indices += (indices * math.ceil(padding / len(indices)))[:padding]
        indices = indices[self.rank : self.total_size : self.num_replicas]
        start, self.start = self.start, 0  # the skip applies to one pass only
        return iter(indices[start:])


class ResumableDataLoader(DataLoader):
    """Shuffled batches of ``dataset`` whose position in the epoch survives a checkpoint.

    Counts the batches it hands out (in the main process, so prefetching workers don't inflate
    the count); :meth:`load_state_dict` makes the next pass skip those, in the sampler, so no
    example is loaded to be thrown away. A pass that runs to the end moves on to the next epoch.

    Args:
        dataset: A sized map-style dataset.
        batch_size: Examples per batch.
        seed: Seeds the shuffle (with the epoch).
        num_replicas: Data-parallel world size; each rank sees a disjoint share.
        rank: This process's data-parallel rank.
        **kwargs: Other :class:`DataLoader` arguments (not ``sampler``/``shuffle``).
    """

    def __init__(
        self,
        dataset: Sized,
        batch_size: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        **kwargs: Any,
    ) -> None:
        sampler = ResumableSampler(dataset, num_replicas=num_replicas, rank=rank, seed=seed)
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
        self._epoch = 0  # the epoch of the current (or last) pass
        self._yielded = 0  # batches of that epoch handed out so far

    def __iter__(self) -> Iterator[Any]:
        sampler = self.sampler
        if sampler.epoch == self._epoch and self._yielded >= len(self):
            sampler.set_epoch(self._epoch + 1)  # used without Lightning's set_epoch: reshuffle
        self._epoch, self._yielded = sampler.epoch, sampler.start // self.batch_size
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        if self.sampler.epoch != self._epoch:  # set_epoch moved on; no batch of it handed out yet
            return {"epoch": self.sampler.epoch, "batches_yielded": 0}
        return {"epoch": self._epoch, "batches_yielded": self._yielded}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        epoch, done = int(state_dict["epoch"]), int(state_dict["batches_yielded"])
        if done >= len(self):  # saved at the end of an epoch: the next pass is the next epoch
            epoch, done = epoch + 1, 0
        self.sampler.set_epoch(epoch)
        self.sampler.start = done * self.batch_size
        self._epoch, self._yielded = epoch, done
