"""PyTorch baseline of bench/step.mjs: the same step (CoOp context through a frozen ViT-B/16-shaped CLIP text
tower with random weights, LaRE V6 map attention + channel gate on cached patch tokens, the attention fuser as
token projection + nn.MultiheadAttention + LayerNorm, bias-free text projection, 100·cos logits, cross-entropy,
Adam), float32 on the CPU. The text sequence is cut at the EOT like @dfd's (`seq` argument).

    python torch_step.py <batch> <repeats> <threads> <seq>

Prints one JSON line. Needs torch + transformers (install line in tools/fixtures/fusion/make_fixtures.py, plus
transformers); run by bench.mjs.
"""
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from transformers import CLIPConfig, CLIPModel
from transformers.masking_utils import create_causal_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools/fixtures/fusion"))
from make_fixtures import ChannelAlign, MapAttention  # noqa: E402  (the modules the parity fixture checks)

batch, repeats, threads, seq = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(threads)
torch.manual_seed(0)
WIDTH, GRID, EMBED = 768, 14, 512

config = CLIPConfig(
    projection_dim=EMBED,
    text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8, vocab_size=49408,
                     max_position_embeddings=77, hidden_act="quick_gelu"),
    vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4, image_size=32, patch_size=8),
)
clip = CLIPModel(config).eval()
for p in clip.parameters():
    p.requires_grad_(False)
tm = clip.text_model
n_ctx = 16
ctx = nn.Parameter(torch.randn(n_ctx, 512) * 0.02)
prefix = torch.randn(2, 1, 512) * 0.02
suffix = torch.randn(2, seq - 1 - n_ctx, 512) * 0.02
eot = torch.tensor([seq - 1, seq - 1])

conv = nn.Conv2d(4, 8, 1)
attn = MapAttention(WIDTH, 8, 64, GRID)
gate = ChannelAlign(4, 128, WIDTH)
d = 512
token_proj = nn.Linear(2 * WIDTH, d)
mha = nn.MultiheadAttention(d, 8, dropout=0.1, kdim=WIDTH, vdim=WIDTH, batch_first=True)
norm = nn.LayerNorm(d)
drop = nn.Dropout(0.1)
text_proj = nn.Linear(EMBED, EMBED + d, bias=False)
modules = nn.ModuleList([conv, attn, gate, token_proj, mha, norm, text_proj]).train()
optimizer = torch.optim.Adam([ctx, *modules.parameters()], lr=1e-4)

embeds = torch.randn(batch, EMBED)
tokens = torch.randn(batch, GRID, GRID, WIDTH)
lare = torch.rand(batch, 4, 32, 32) * 0.2
labels = torch.arange(batch) % 2


def text_features():
    x = torch.cat([prefix, ctx.unsqueeze(0).expand(2, -1, -1), suffix], 1) + tm.embeddings.position_embedding.weight[:seq]
    mask = create_causal_mask(config=tm.config, inputs_embeds=x, attention_mask=None, cache=None)
    x = tm.final_layer_norm(tm.encoder(inputs_embeds=x, attention_mask=mask, is_causal=True).last_hidden_state)
    return clip.text_projection(x[torch.arange(2), eot])


def step():
    fmap = tokens.permute(0, 3, 1, 2)
    bias = conv(nn.functional.adaptive_avg_pool2d(lare, (GRID, GRID)))
    enhanced = torch.cat([attn(fmap, bias), gate(fmap, lare)], 1)
    q = token_proj(enhanced)[:, None]
    kv = tokens.reshape(batch, GRID * GRID, WIDTH)
    attended, _ = mha(q, kv, kv, need_weights=False)
    fused = torch.cat([embeds, norm(q + drop(attended))[:, 0]], 1)
    image = fused / fused.norm(dim=-1, keepdim=True)
    text = text_proj(text_features())
    text = text / text.norm(dim=-1, keepdim=True)
    loss = nn.functional.cross_entropy(100 * image @ text.t(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


step()
times = []
for _ in range(repeats):
    start = time.perf_counter()
    step()
    times.append((time.perf_counter() - start) * 1000)
times.sort()
print(json.dumps({"engine": "pytorch", "batch": batch, "threads": threads, "ms": times[len(times) // 2], "torch": torch.__version__}))
