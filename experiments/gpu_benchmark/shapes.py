"""LLaDA-shaped model sizes and the model FLOPs of one forward + backward."""

from __future__ import annotations

from dataclasses import dataclass

from bgpo_lightning.policy.model import TinyModelConfig

LLADA_VOCAB = 126464
LLADA_MASK_ID = 126336


@dataclass(frozen=True)
class Shape:
    """A LLaDA-shaped (Llama, untied head, SwiGLU, bidirectional) model size."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int = LLADA_VOCAB
    mask_id: int = LLADA_MASK_ID

    def tiny_config(self, max_positions: int) -> TinyModelConfig:
        return TinyModelConfig(
            hidden_size=self.hidden,
            num_layers=self.layers,
            num_heads=self.heads,
            intermediate_size=self.intermediate,
            max_position_embeddings=max_positions,
        )

    @property
    def body_params(self) -> int:
        """Parameters of the transformer blocks (attention + SwiGLU; norms are negligible)."""
        return self.layers * (4 * self.hidden**2 + 3 * self.hidden * self.intermediate)

    @property
    def params(self) -> int:
        """All parameters: blocks, input embedding and the untied output head."""
        return self.body_params + 2 * self.vocab * self.hidden

    def train_flops(self, sequences: int, length: int, scored: int) -> float:
        """Model FLOPs of one forward + backward (3x the forward's matmul FLOPs).

        Args:
            sequences: rows in the batch.
            length: tokens per row (prompt + response), all through the blocks.
            scored: positions per row that go through the output head (the response).
        """
        dense = 2 * (self.body_params * length + self.vocab * self.hidden * scored)
        attention = 4 * self.layers * self.hidden * length**2  # QK^T and AV
        return 3.0 * sequences * (dense + attention)

    def forward_flops(self, sequences: int, length: int, scored: int) -> float:
        """Model FLOPs of one forward."""
        return self.train_flops(sequences, length, scored) / 3.0


# ~1.1B: LLaDA-8B's vocabulary and head with 12 blocks of a 2048-wide model.
SHAPES = {
    "tiny": Shape(
        hidden=64, layers=2, heads=4, intermediate=128, vocab=512, mask_id=511
    ),  # CPU smoke test
    "1b": Shape(hidden=2048, layers=12, heads=16, intermediate=5632),
    "3b": Shape(hidden=3072, layers=24, heads=24, intermediate=8192),
    "8b": Shape(hidden=4096, layers=32, heads=32, intermediate=12288),  # LLaDA-8B
}
