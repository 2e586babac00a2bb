"""PyTorch baseline for the precision benchmark: transformers' CLIPVisionModelWithProjection on the same
Hugging Face folder (same weights as our graph), CPU, fp32 or bf16 autocast (oneDNN/AMX).

    python torch_clip.py <model dir> <fp32|bf16> <batch> <threads> <min_seconds> [cosine pixels .f32] [out .f32]

Prints one JSON line like frozen-worker.mjs. Install: the fixture venv of tools/fixtures/clip/make_fixtures.py.
"""
import json
import resource
import sys
import time

import numpy as np
import torch
from transformers import CLIPConfig, CLIPVisionModelWithProjection

model_dir, mode, batch, threads, min_seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
torch.set_num_threads(threads)
# A CLIPModel folder keeps projection_dim at the top level; the vision-only model reads it from its own
# config (default 512), so hand it over, or a ViT-L/14's 768-wide projection is refused as a size mismatch.
config = CLIPConfig.from_pretrained(model_dir)
config.vision_config.projection_dim = config.projection_dim
model = CLIPVisionModelWithProjection.from_pretrained(model_dir, config=config.vision_config).eval()
size = model.config.image_size
pixels = torch.from_numpy(np.sin(np.arange(batch * 3 * size * size, dtype=np.float64) * 0.37).astype(np.float32) * 1.5).reshape(batch, 3, size, size)


def forward(x):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
        out = model(pixel_values=x)
        return out.image_embeds.float(), out.last_hidden_state.float()


forward(pixels)
images, start = 0, time.perf_counter()
while True:
    forward(pixels)
    images += batch
    if time.perf_counter() - start >= min_seconds:
        break
seconds = time.perf_counter() - start
if len(sys.argv) > 7:
    cos = torch.from_numpy(np.fromfile(sys.argv[6], dtype=np.float32)).reshape(-1, 3, size, size)
    forward(cos)[0].numpy().astype(np.float32).tofile(sys.argv[7])
print(json.dumps({
    "engine": f"pytorch-{mode}", "batch": batch, "threads": threads, "images": images, "seconds": seconds,
    "imagesPerSecond": images / seconds, "backend": f"torch-{torch.__version__}-cpu{'-bf16-autocast' if mode == 'bf16' else ''}",
    "peakRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
