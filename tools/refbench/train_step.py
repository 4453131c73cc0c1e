#!/usr/bin/env python3
"""The PyTorch reference of `pnpm bench train`: one Llama training step, the same one ane-train runs.

A hand-written Llama of the given config (token embedding, RMSNorm, rotate-half RoPE, multi-head
causal attention, SwiGLU FFN, classifier tied to the embedding, next-token cross-entropy), fp32;
a step is forward + backward + clip_grad_norm_(1.0) + torch.optim.AdamW (lr 3e-4, betas 0.9/0.95,
weight decay 0.1 except the norm gains), as ane-train's Trainer defaults. Random token ids.

Prints one JSON line: the median ms per step after the warm-up steps, every measured time, and how
torch ran (threads, BLAS, allocator), so the bench can state it.

Usage: python3 tools/refbench/train_step.py --dim 288 --hidden 768 --layers 6 --heads 6 \
           --vocab 32000 --batch 1 --seq 256 [--steps 5] [--warmup 2] [--threads 2]
(run it under LD_PRELOAD=libjemalloc.so.2 when present; `pnpm bench train` does)
"""
import argparse
import json
import math
import os
import re
import statistics
import time

import torch
import torch.nn.functional as F


class Llama(torch.nn.Module):
    def __init__(self, dim, hidden, layers, heads, vocab, seq, eps=1e-5, theta=10000.0):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.eps = eps
        self.tok_embeddings = torch.nn.Parameter(torch.empty(vocab, dim).normal_(0, 0.02))
        self.layers = torch.nn.ModuleList()
        for _ in range(layers):
            layer = torch.nn.ParameterDict({
                'attention_norm': torch.nn.Parameter(torch.ones(dim)),
                'wq': torch.nn.Parameter(torch.empty(dim, dim).normal_(0, 0.02)),
                'wk': torch.nn.Parameter(torch.empty(dim, dim).normal_(0, 0.02)),
                'wv': torch.nn.Parameter(torch.empty(dim, dim).normal_(0, 0.02)),
                'wo': torch.nn.Parameter(torch.empty(dim, dim).normal_(0, 0.02)),
                'ffn_norm': torch.nn.Parameter(torch.ones(dim)),
                'w1': torch.nn.Parameter(torch.empty(hidden, dim).normal_(0, 0.02)),
                'w3': torch.nn.Parameter(torch.empty(hidden, dim).normal_(0, 0.02)),
                'w2': torch.nn.Parameter(torch.empty(dim, hidden).normal_(0, 0.02)),
            })
            self.layers.append(layer)
        self.norm = torch.nn.Parameter(torch.ones(dim))
        # Rotate-half RoPE tables (Hugging Face Llama layout) and the causal mask, built once.
        inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        angles = torch.outer(torch.arange(seq).float(), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer('cos', angles.cos(), persistent=False)
        self.register_buffer('sin', angles.sin(), persistent=False)
        self.register_buffer('mask', torch.full((seq, seq), float('-inf')).triu(1), persistent=False)

    def rms_norm(self, x, weight):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * weight

    def rope(self, x):
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * self.cos + rotated * self.sin

    def forward(self, tokens):
        batch, seq = tokens.shape
        h = F.embedding(tokens, self.tok_embeddings)
        for layer in self.layers:
            x = self.rms_norm(h, layer['attention_norm'])
            split = lambda t: t.view(batch, seq, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731
            q = self.rope(split(F.linear(x, layer['wq'])))
            k = self.rope(split(F.linear(x, layer['wk'])))
            v = split(F.linear(x, layer['wv']))
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim) + self.mask
            attention = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, -1)
            h = h + F.linear(attention, layer['wo'])
            x = self.rms_norm(h, layer['ffn_norm'])
            h = h + F.linear(F.silu(F.linear(x, layer['w1'])) * F.linear(x, layer['w3']), layer['w2'])
        return F.linear(self.rms_norm(h, self.norm), self.tok_embeddings)


def blas_libraries():
    """The BLAS shared objects mapped into this process (after a matmul), resolved."""
    found = set()
    with open('/proc/self/maps') as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ''
            if 'blas' in os.path.basename(path).lower():
                found.add(os.path.realpath(path))
    return sorted(found)


def main():
    parser = argparse.ArgumentParser()
    for name in ('dim', 'hidden', 'layers', 'heads', 'vocab', 'batch', 'seq'):
        parser.add_argument(f'--{name}', type=int, required=True)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Llama(args.dim, args.hidden, args.layers, args.heads, args.vocab, args.seq)
    decay = [p for name, p in model.named_parameters() if 'norm' not in name]
    no_decay = [p for name, p in model.named_parameters() if 'norm' in name]
    optimizer = torch.optim.AdamW(
        [{'params': decay, 'weight_decay': 0.1}, {'params': no_decay, 'weight_decay': 0.0}],
        lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    generator = torch.Generator().manual_seed(1)

    def step():
        tokens = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=generator)
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, args.vocab), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    times = []
    loss = float('nan')
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        loss = step()
        elapsed = time.perf_counter() - start
        if i >= args.warmup:
            times.append(elapsed * 1000)
    config_text = torch.__config__.show()
    blas_info = re.search(r'BLAS_INFO=([^,\s]+)', config_text)
    print(json.dumps({
        'msPerStep': statistics.median(times),
        'times': times,
        'loss': loss,
        'params': sum(p.numel() for p in model.parameters()),
        'environment': {
            'torch': torch.__version__,
            'threads': torch.get_num_threads(),
            'blasInfo': blas_info.group(1) if blas_info else 'unknown',
            'blasLibraries': blas_libraries(),
            'libblasAlternative': os.path.realpath('/usr/lib/x86_64-linux-gnu/libblas.so.3'),
            'cpuCapability': next((line.split(':')[1].strip() for line in config_text.splitlines()
                                   if 'CPU capability' in line), 'unknown'),
            'ldPreload': os.environ.get('LD_PRELOAD', ''),
            'ompNumThreads': os.environ.get('OMP_NUM_THREADS', ''),
        },
    }), flush=True)


if __name__ == '__main__':
    main()
