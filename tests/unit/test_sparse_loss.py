"""The trainer's loss with logits only where a trained token is predicted equals the full loss."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("arch", ["llama", "bloom"])
def test_sparse_logits_loss_and_gradients_equal_the_full_loss(tmp_path, arch):
    from transformers import AutoModelForCausalLM, TrainingArguments

    from belle_trainer.chat_format import IGNORE_INDEX
    from belle_trainer.hf_trainer import BelleTrainer
    from belle_trainer.tiny import init_tiny_model

    folder = init_tiny_model(tmp_path / "m", arch=arch, hidden_size=32, num_layers=1, num_heads=2, vocab_size=300)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")
    trainer = BelleTrainer(model=model, args=args)
    assert trainer._sparse_logits
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 290, (3, 20), generator=generator)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[0, 5:9] = ids[0, 5:9]          # replies at different places in each row
    labels[1, 12:20] = ids[1, 12:20]
    labels[2, 1:3] = ids[2, 1:3]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    model.train()

    results = []
    for sparse in (True, False):
        trainer._sparse_logits = sparse
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=None)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (sparse_loss, sparse_grads), (full_loss, full_grads) = results
    assert sparse_loss == pytest.approx(full_loss.item(), rel=1e-5)
    assert len(sparse_grads) == len(full_grads)
    for a, b in zip(sparse_grads, full_grads):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
