#!/usr/bin/env python3
"""The PyTorch reference of `pnpm bench optim`: torch.optim.AdamW over Stories110M-shaped tensors.

Prints one JSON line per setting tried (threads x foreach), then one with the environment, so the
bench can pick PyTorch's best and say how it ran. Timing: median wall time of optimizer.step()
after warm-up steps; bandwidth counts 28 bytes per parameter (read p, g, m, v; write p, m, v).

Usage: python3 bench/optim_torch.py [threads ...]   (run under LD_PRELOAD=libjemalloc.so.2 when present)
"""
import json
import os
import statistics
import sys
import time

import torch

# llama2.c Stories110M: dim 768, 12 layers, hidden 2048, vocab 32000; the classifier shares the
# embedding, so it is not a separate parameter.
DIM, LAYERS, HIDDEN, VOCAB = 768, 12, 2048, 32000


def stories110m_shapes():
    shapes = [('tok_embeddings.weight', (VOCAB, DIM))]
    for layer in range(LAYERS):
        prefix = f'layers.{layer}.'
        shapes += [(prefix + 'attention_norm.weight', (DIM,))]
        shapes += [(prefix + f'attention.{w}.weight', (DIM, DIM)) for w in ('wq', 'wk', 'wv', 'wo')]
        shapes += [(prefix + 'ffn_norm.weight', (DIM,))]
        shapes += [(prefix + 'feed_forward.w1.weight', (HIDDEN, DIM)),
                   (prefix + 'feed_forward.w2.weight', (DIM, HIDDEN)),
                   (prefix + 'feed_forward.w3.weight', (HIDDEN, DIM))]
    shapes += [('norm.weight', (DIM,))]
    return shapes


def measure(params, threads, foreach, steps=7, warmup=2):
    torch.set_num_threads(threads)
    for p in params:
        p.grad.normal_(0, 1e-3)  # fresh gradients, so nothing is cached from the last setting
    optimizer = torch.optim.AdamW(params, lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, foreach=foreach)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        optimizer.step()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
    del optimizer
    return statistics.median(times)


def main():
    threads_list = [int(t) for t in sys.argv[1:]] or [1, 2]
    torch.manual_seed(0)
    shapes = stories110m_shapes()
    params = []
    for _, shape in shapes:
        p = torch.nn.Parameter(torch.empty(shape).normal_(0, 0.02))
        p.grad = torch.empty(shape)
        params.append(p)
    count = sum(p.numel() for p in params)
    with torch.no_grad():
        for threads in threads_list:
            for foreach in (False, True):
                seconds = measure(params, threads, foreach)
                print(json.dumps({'threads': threads, 'foreach': foreach, 'seconds': seconds, 'params': count,
                                  'gbps': count * 28 / seconds / 1e9}), flush=True)
    print(json.dumps({'environment': {
        'torch': torch.__version__,
        'parallel': torch.__config__.parallel_info().splitlines()[-1].strip(),
        'cpuCapability': next((line.split(':')[1].strip() for line in torch.__config__.show().splitlines()
                               if 'CPU capability' in line), 'unknown'),
        'ldPreload': os.environ.get('LD_PRELOAD', ''),
        'ompNumThreads': os.environ.get('OMP_NUM_THREADS', ''),
    }}), flush=True)


if __name__ == '__main__':
    main()
