#!/usr/bin/env python3
"""PyTorch + diffusers baseline of LaRE stage 1 for `npm run bench` (the procedure of LaRE's extract_lare.py).

argv: DIFFUSERS_DIR IMAGE_DIR BATCH COUNT SIZE ENSEMBLE THREADS MODE NOISE_FILE MAPS_OUT -> one JSON line.
MODE: fp32, or bf16 (torch.autocast on the CPU around the VAE and the UNet). NOISE_FILE: safetensors with
image_noise [4,h,w] and eps [E,4,h,w] used for every image (the same file our worker reads), so the maps
written to MAPS_OUT (float32, image order) compare with ours.
Install: ~/.cache/dfd/venv-torch (torch, diffusers, transformers, pillow).
"""
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def main() -> int:
    model, image_dir, batch, count, size, ensemble, threads, mode, noise_file, maps_out = sys.argv[1:11]
    batch, count, size, ensemble = int(batch), int(count), int(size), int(ensemble)
    torch.set_num_threads(int(threads))
    torch.set_grad_enabled(False)
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer
    from safetensors.torch import load_file
    import contextlib

    fixed = load_file(noise_file)
    eta, eps = fixed['image_noise'], fixed['eps'][:ensemble]
    autocast = (lambda: torch.autocast('cpu', dtype=torch.bfloat16)) if mode == 'bf16' else contextlib.nullcontext

    t0 = time.perf_counter()
    root = Path(model)
    vae = AutoencoderKL.from_pretrained(root / 'vae').eval()
    unet = UNet2DConditionModel.from_pretrained(root / 'unet').eval()
    text_encoder = CLIPTextModel.from_pretrained(root / 'text_encoder').eval()
    tokenizer = CLIPTokenizer.from_pretrained(root / 'tokenizer')
    scheduler = DDPMScheduler.from_pretrained(root / 'scheduler')
    ids = tokenizer('a photo of a face', max_length=tokenizer.model_max_length, padding='max_length', truncation=True, return_tensors='pt').input_ids
    text = text_encoder(ids)[0]
    load = time.perf_counter() - t0
    images = sorted(Path(image_dir).glob('*.png'))[:count]

    def pixels(paths):
        out = []
        for p in paths:
            img = Image.open(p).convert('RGB').resize((size, size), Image.BICUBIC)
            out.append((torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1) / 255.0 - 0.5) * 2)
        return torch.stack(out)

    times = {'vae': 0.0, 'unet': 0.0}

    def run(paths):
        x = pixels(paths)
        b = x.shape[0]
        t = time.perf_counter()
        with autocast():
            dist = vae.encode(x).latent_dist
        latents = (dist.mean.float() + dist.std.float() * eta) * vae.config.scaling_factor
        times['vae'] += time.perf_counter() - t
        latents = latents.repeat_interleave(ensemble, dim=0)
        noise = eps.repeat(b, 1, 1, 1)
        steps = torch.full((b * ensemble,), 200, dtype=torch.long)
        noisy = scheduler.add_noise(latents, noise, steps)
        t = time.perf_counter()
        with autocast():
            pred = unet(noisy, steps, text.repeat(b * ensemble, 1, 1)).sample
        times['unet'] += time.perf_counter() - t
        err = F.mse_loss(pred.float(), noise.float(), reduction='none').view(b, ensemble, *pred.shape[1:]).mean(1)
        return err

    run(images[:batch])  # warm-up, not timed
    times = {'vae': 0.0, 'unet': 0.0}
    t0 = time.perf_counter()
    done = 0
    maps = []
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        maps.append(run(chunk))
        done += len(chunk)
    seconds = time.perf_counter() - t0
    torch.cat(maps).float().numpy().astype(np.float32).tofile(maps_out)
    print(json.dumps({
        'engine': f'pytorch {mode}' + (' autocast' if mode == 'bf16' else ''), 'batch': batch, 'images': done, 'imgPerSec': done / seconds,
        'vaeSecPerImage': times['vae'] / done, 'unetSecPerImage': times['unet'] / done, 'loadSeconds': load,
        'peakRssGiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
    }))
    return 0


if __name__ == '__main__':
    sys.exit(main())
