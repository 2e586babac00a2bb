"""PyTorch baseline for the encoder-clip benchmark: torchvision's vit_b_16 (random weights), CPU.

    python torch_vit.py <batch> <threads> <min_seconds>

Prints one JSON line like worker.mjs. Run by bench.mjs with /root/.cache/dfd/venv-clip/bin/python when
present (install line in tools/fixtures/clip/make_fixtures.py).
"""
import json
import resource
import sys
import time

import torch
from torchvision.models import vit_b_16

batch, threads, min_seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
torch.set_num_threads(threads)
model = vit_b_16(weights=None).eval()
pixels = torch.randn(batch, 3, 224, 224)
with torch.inference_mode():
    model(pixels)  # warm-up
    images, start = 0, time.perf_counter()
    while True:
        model(pixels)
        images += batch
        if time.perf_counter() - start >= min_seconds:
            break
    seconds = time.perf_counter() - start
print(json.dumps({
    "engine": "pytorch", "batch": batch, "threads": threads, "images": images, "seconds": seconds,
    "imagesPerSecond": images / seconds, "backend": f"torch-{torch.__version__}-cpu",
    "peakRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
