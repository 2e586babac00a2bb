#!/usr/bin/env python3
"""Export a diffusers Stable Diffusion folder to the ONNX layout `dfd lare extract` reads.

Install (once, CPU torch is enough):

    python3 -m venv ~/.cache/dfd/venv-torch
    ~/.cache/dfd/venv-torch/bin/pip install torch diffusers transformers safetensors onnx onnxscript

Run:

    ~/.cache/dfd/venv-torch/bin/python tools/sd-onnx/export_sd_onnx.py /models/stable-diffusion-v1-5 /models/sd15-onnx

The input is any diffusers folder with `unet/`, `vae/`, `text_encoder/`, `tokenizer/` and `scheduler/`
(SD 1.x/2.x, or a tiny random one made with small configs). The output:

    text_encoder/model.onnx   input_ids int64 [B, L]            -> last_hidden_state [B, L, D]
    vae_encoder/model.onnx    sample float32 [B, 3, H, W]        -> latent_mean, latent_logvar [B, 4, H/8, W/8]
    vae_encoder/config.json   the VAE's config (scaling_factor)
    unet/model.onnx           sample [B, 4, h, w], timestep int64 [B], encoder_hidden_states [B, L, D] -> out_sample
                              (weights of a large UNet in one file beside it: unet/model.onnx_data)
    tokenizer/                copied (vocab.json, merges.txt, ...)
    scheduler/scheduler_config.json   copied
    dfd-export.json           what made this folder

Why a separate VAE encoder graph: the public ONNX exports (diffusers' convert_stable_diffusion_checkpoint_to_onnx,
optimum) return `latent_sample`, a sample drawn inside the graph by an unseeded RandomNormal, so every call
gives different latents and LaRE maps cannot be reproduced. This export returns the distribution's mean and
log-variance (as diffusers' DiagonalGaussianDistribution holds them: log-variance clamped to [-30, 20]); the
caller samples `mean + exp(logvar / 2) * eta` with its own seeded noise.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch


class VaeEncoderMeanLogvar(torch.nn.Module):
    """AutoencoderKL.encode without sampling: the latent distribution's mean and (clamped) log-variance."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, sample):
        dist = self.vae.encode(sample).latent_dist
        return dist.mean, dist.logvar


class UnetEpsilon(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class TextEncoderHidden(torch.nn.Module):
    def __init__(self, text_encoder):
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, input_ids):
        return self.text_encoder(input_ids, return_dict=False)[0]


def _export(module, args, path: Path, input_names, output_names, dynamic_axes, opset: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = path.parent / '.export-tmp'
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    tmp_dir.mkdir()
    tmp = tmp_dir / 'model.onnx'
    with torch.no_grad():
        torch.onnx.export(
            module, args, str(tmp), input_names=input_names, output_names=output_names,
            dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    import onnx

    # Re-save: a model over 2 GB comes out of the exporter as hundreds of external-data files; keep one
    # `model.onnx_data` beside the graph (or none at all for small models).
    model = onnx.load(str(tmp), load_external_data=True)
    size = sum(t.ByteSize() for t in model.graph.initializer)
    for old in (path, path.with_name('model.onnx_data')):
        if old.exists():
            old.unlink()
    if size > 1_500_000_000:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location='model.onnx_data', size_threshold=1024)
    else:
        onnx.save_model(model, str(path))
    shutil.rmtree(tmp_dir)


def export(src: Path, out: Path, opset: int = 17, image_size: int | None = None, log=print) -> dict:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    for sub in ('unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler'):
        if not (src / sub).is_dir():
            raise SystemExit(f'{src} has no {sub}/ folder: not a diffusers Stable Diffusion folder')
    out.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)

    text_encoder = CLIPTextModel.from_pretrained(src / 'text_encoder').eval()
    vae = AutoencoderKL.from_pretrained(src / 'vae').eval()
    unet = UNet2DConditionModel.from_pretrained(src / 'unet').eval()
    seq = int(text_encoder.config.max_position_embeddings)
    width = int(text_encoder.config.hidden_size)
    size = image_size or int(vae.config.sample_size)
    down = 2 ** (len(vae.config.block_out_channels) - 1)
    latent = size // down
    channels = int(unet.config.in_channels)

    started = time.time()
    _export(TextEncoderHidden(text_encoder), (torch.zeros(1, seq, dtype=torch.int64),), out / 'text_encoder' / 'model.onnx',
            ['input_ids'], ['last_hidden_state'], {'input_ids': {0: 'batch'}, 'last_hidden_state': {0: 'batch'}}, opset)
    log(f'text_encoder exported ({time.time() - started:.1f} s)')

    started = time.time()
    _export(VaeEncoderMeanLogvar(vae), (torch.zeros(1, 3, size, size),), out / 'vae_encoder' / 'model.onnx',
            ['sample'], ['latent_mean', 'latent_logvar'],
            {'sample': {0: 'batch', 2: 'height', 3: 'width'}, 'latent_mean': {0: 'batch', 2: 'h', 3: 'w'},
             'latent_logvar': {0: 'batch', 2: 'h', 3: 'w'}}, opset)
    (out / 'vae_encoder' / 'config.json').write_text(json.dumps(dict(vae.config), indent=1, default=str))
    log(f'vae_encoder exported ({time.time() - started:.1f} s)')

    started = time.time()
    args = (torch.zeros(2, channels, latent, latent), torch.tensor([1, 1], dtype=torch.int64), torch.zeros(2, seq, width))
    _export(UnetEpsilon(unet), args, out / 'unet' / 'model.onnx', ['sample', 'timestep', 'encoder_hidden_states'], ['out_sample'],
            {'sample': {0: 'batch', 2: 'h', 3: 'w'}, 'timestep': {0: 'batch'}, 'encoder_hidden_states': {0: 'batch'},
             'out_sample': {0: 'batch', 2: 'h', 3: 'w'}}, opset)
    log(f'unet exported ({time.time() - started:.1f} s)')

    for sub in ('tokenizer', 'scheduler'):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
        shutil.copytree(src / sub, out / sub)
    if (src / 'model_index.json').exists():
        shutil.copy(src / 'model_index.json', out / 'model_index.json')
    import diffusers

    info = {
        'format': 'dfd-sd-onnx/1',
        'source': str(src),
        'opset': opset,
        'torch': torch.__version__,
        'diffusers': diffusers.__version__,
        'vae_encoder': 'deterministic: outputs latent_mean and latent_logvar (no sampling in the graph)',
        'unet_timestep': 'int64 [B]',
    }
    (out / 'dfd-export.json').write_text(json.dumps(info, indent=1) + '\n')
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', type=Path, help='diffusers Stable Diffusion folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/)')
    parser.add_argument('out', type=Path, help='output folder (created)')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--image-size', type=int, default=None, help='trace size (the graphs accept any size); default the VAE config sample_size')
    args = parser.parse_args(argv)
    export(args.src, args.out, args.opset, args.image_size)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
