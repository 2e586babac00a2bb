"""PyTorch baseline of the backend benchmark (examples/bench/backends.mjs): the same steps with
transformers' CLIP modules, random weights, CPU.

    python torch_steps.py <coop-b16|coop-l14|cocoop-b8|vit-b16-b8> <repeats> <tokens> <threads>

`tokens` is the text sequence length the tfjs side used (the pass stopped at the longest EOT). Prints one
JSON line like backend-worker.mjs. Needs torch and transformers; the repository's venv:
    python3 -m venv ~/.cache/dfd/venv-torch && ~/.cache/dfd/venv-torch/bin/pip install torch transformers
(backends.mjs uses it when present; DFD_TORCH_PYTHON points elsewhere).
"""
import json
import statistics
import sys
import time

import torch
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPVisionConfig, CLIPVisionModelWithProjection
from transformers.masking_utils import create_causal_mask

task, repeats, tokens, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)

TOWERS = {
    "B/16": dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8, projection_dim=512),
    "L/14": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, projection_dim=768),
}


def median_ms(fn):
    fn()  # warm-up, as timeMs does
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def text_model(shape):
    config = CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu", **TOWERS[shape])
    model = CLIPTextModelWithProjection(config).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def encode_prompts(model, prompts, eot):
    """CoOp's TextEncoder: prompt embeddings + positions → causal transformer → EOT token → projection."""
    tm = model.text_model
    x = prompts + tm.embeddings.position_embedding.weight[: prompts.shape[1]]
    mask = create_causal_mask(config=tm.config, inputs_embeds=x, attention_mask=None, cache=None)
    h = tm.encoder(inputs_embeds=x, attention_mask=mask, is_causal=True).last_hidden_state
    h = tm.final_layer_norm(h)
    return model.text_projection(h[torch.arange(h.shape[0]), eot])


def assemble(model, ctx, n_seq):
    """[SOS, ctx..., class tokens, '.', EOT] for `n_seq` sequences of `tokens` tokens (EOT last)."""
    ids = torch.randint(1, 49000, (n_seq, tokens))
    with torch.no_grad():
        frozen = model.text_model.embeddings.token_embedding(ids)
    n_ctx = ctx.shape[-2]
    eot = torch.full((n_seq,), tokens - 1)
    return frozen[:, :1], frozen[:, 1 + n_ctx :], eot


def coop(shape):
    model = text_model(shape)
    width, dim = TOWERS[shape]["hidden_size"], TOWERS[shape]["projection_dim"]
    ctx = nn.Parameter(torch.randn(16, width) * 0.02)
    prefix, suffix, eot = assemble(model, ctx, 2)
    image = nn.functional.normalize(torch.randn(16, dim), dim=-1)
    labels = torch.arange(16) % 2

    def step():
        prompts = torch.cat([prefix, ctx.expand(2, -1, -1), suffix], 1)
        t = nn.functional.normalize(encode_prompts(model, prompts, eot), dim=-1)
        loss = nn.functional.cross_entropy(100 * image @ t.T, labels)
        ctx.grad = None
        loss.backward()

    return median_ms(step)


def cocoop(batch):
    model = text_model("B/16")
    width = dim = 512
    ctx = nn.Parameter(torch.randn(4, width) * 0.02)
    meta = nn.Sequential(nn.Linear(dim, dim // 16), nn.ReLU(), nn.Linear(dim // 16, width))
    prefix, suffix, eot = assemble(model, ctx, batch * 2)
    image = nn.functional.normalize(torch.randn(batch, dim), dim=-1)
    labels = torch.arange(batch) % 2
    params = [ctx, *meta.parameters()]

    def step():
        shifted = ctx.unsqueeze(0) + meta(image).unsqueeze(1)  # [B, n_ctx, D]
        per_class = shifted.unsqueeze(1).expand(-1, 2, -1, -1).reshape(batch * 2, 4, width)
        prompts = torch.cat([prefix, per_class, suffix], 1)
        t = nn.functional.normalize(encode_prompts(model, prompts, eot), dim=-1).reshape(batch, 2, -1)
        logits = 100 * torch.einsum("bcd,bd->bc", t, image)
        loss = nn.functional.cross_entropy(logits, labels)
        for p in params:
            p.grad = None
        loss.backward()

    return median_ms(step)


def vit(batch):
    config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                              image_size=224, patch_size=16, projection_dim=512, hidden_act="quick_gelu")
    model = CLIPVisionModelWithProjection(config).eval()
    pixels = torch.randn(batch, 3, 224, 224)

    def forward():
        with torch.inference_mode():
            out = model(pixel_values=pixels)
            out.image_embeds.sum().item()
            out.last_hidden_state.sum().item()

    return median_ms(forward)


runs = {"coop-b16": lambda: coop("B/16"), "coop-l14": lambda: coop("L/14"), "cocoop-b8": lambda: cocoop(8), "vit-b16-b8": lambda: vit(8)}
ms = runs[task]()
print(json.dumps({"task": task, "backend": f"pytorch-{torch.__version__}", "ms": ms, "tokens": tokens, "threads": threads}))
