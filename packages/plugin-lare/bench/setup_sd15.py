#!/usr/bin/env python3
"""Benchmark setup: Stable Diffusion 1.5's architecture with random weights, as a diffusers folder and its ONNX export.

Install (once): python3 -m venv ~/.cache/dfd/venv-torch && ~/.cache/dfd/venv-torch/bin/pip install torch diffusers transformers safetensors onnx onnxscript
Run (heavy: ~4.5 GB of weights, several GB of RAM, minutes; `npm run bench` calls it once when the cache is empty):

    flock /tmp/dfd-heavy.lock ~/.cache/dfd/venv-torch/bin/python packages/plugin-lare/bench/setup_sd15.py [CACHE_DIR]

CACHE_DIR (default ~/.cache/dfd/lare-bench) is outside the repository; it gets sd15-random/ (diffusers) and
sd15-random-onnx/ (tools/sd-onnx/export_sd_onnx.py). The configs are SD 1.5's (runwayml/stable-diffusion-v1-5
unet/vae/text_encoder config.json values); the weights are diffusers'/transformers' random initialisation from
seed 0, so speed and memory are SD 1.5's while the maps mean nothing. The tokenizer is the tiny CLIP one of
examples/models/tiny-clip (the text encoder runs once per run; its vocabulary does not change the timing).
"""
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / 'tools' / 'sd-onnx'))
from export_sd_onnx import export  # noqa: E402


def build(folder: Path) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tmp = folder.with_name(folder.name + '.partial')
    if tmp.exists():
        shutil.rmtree(tmp)
    CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                 max_position_embeddings=77, hidden_act='quick_gelu', projection_dim=768)).save_pretrained(tmp / 'text_encoder')
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=('DownEncoderBlock2D',) * 4, up_block_types=('UpDecoderBlock2D',) * 4,
                  block_out_channels=(128, 256, 512, 512), layers_per_block=2, act_fn='silu', latent_channels=4, norm_num_groups=32,
                  sample_size=512, scaling_factor=0.18215).save_pretrained(tmp / 'vae')
    UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, flip_sin_to_cos=True, freq_shift=0,
                         down_block_types=('CrossAttnDownBlock2D',) * 3 + ('DownBlock2D',), up_block_types=('UpBlock2D',) + ('CrossAttnUpBlock2D',) * 3,
                         block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
                         act_fn='silu', norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768, attention_head_dim=8).save_pretrained(tmp / 'unet')
    (tmp / 'scheduler').mkdir()
    (tmp / 'scheduler' / 'scheduler_config.json').write_text(json.dumps({
        '_class_name': 'PNDMScheduler', 'beta_end': 0.012, 'beta_schedule': 'scaled_linear', 'beta_start': 0.00085,
        'num_train_timesteps': 1000, 'set_alpha_to_one': False, 'skip_prk_steps': True, 'steps_offset': 1, 'trained_betas': None, 'clip_sample': False}))
    (tmp / 'tokenizer').mkdir()
    for name in ('vocab.json', 'merges.txt'):
        shutil.copy(ROOT / 'examples/models/tiny-clip' / name, tmp / 'tokenizer' / name)
    (tmp / 'tokenizer' / 'tokenizer_config.json').write_text(json.dumps({'model_max_length': 77, 'pad_token': '<|endoftext|>', 'tokenizer_class': 'CLIPTokenizer'}))
    tmp.rename(folder)


def main() -> int:
    cache = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / '.cache/dfd/lare-bench'
    cache.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    diffusers_dir = cache / 'sd15-random'
    onnx_dir = cache / 'sd15-random-onnx'
    started = time.time()
    if not diffusers_dir.exists():
        build(diffusers_dir)
        print(f'built {diffusers_dir} ({time.time() - started:.0f} s)', flush=True)
    if not (onnx_dir / 'dfd-export.json').exists():
        export(diffusers_dir, onnx_dir.with_name(onnx_dir.name + '.partial'), image_size=256)
        if onnx_dir.exists():
            shutil.rmtree(onnx_dir)
        onnx_dir.with_name(onnx_dir.name + '.partial').rename(onnx_dir)
        print(f'exported {onnx_dir} ({time.time() - started:.0f} s)', flush=True)
    print(onnx_dir)
    return 0


if __name__ == '__main__':
    sys.exit(main())
