#!/usr/bin/env python3
"""Parity fixtures for ane-optim: 20 steps of torch.optim.SGD, Adam, AdamW and a reference Lion.

Each case starts from seeded random fp32 tensors, feeds seeded random fp32 gradients (stored in
the fixture, so the tests need no torch and no matching RNG), and records what PyTorch computes:
the learning rate and the pre-clipping global gradient norm of every step, the parameters after
the first and the last step, and the optimizer state (moments, momentum buffers) at the end.

Learning-rate schedules are written here from their definitions (the same formulas ane-optim's
schedules document) and applied by setting each param group's 'lr' before its step; clipping is
torch.nn.utils.clip_grad_norm_ over all parameters.

Run from the repository root:  pnpm refgen   (or /usr/bin/python3 tools/refgen/optim_fixtures.py)
Writes packages/ane-optim/test/fixtures/optim-parity.json.
"""
import base64
import json
import math
import os
import sys

import numpy as np
import torch

STEPS = 20
SEED = 20240607
OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'packages', 'ane-optim', 'test', 'fixtures',
                   'optim-parity.json')

# name -> shape, in the order the TS side lays them out. Norms and biases are the usual
# no-weight-decay group.
TENSORS = [
    ('embed', (7, 5)),
    ('layers.0.wq', (5, 5)),
    ('layers.0.norm', (5,)),
    ('layers.0.bias', (5,)),
    ('head', (3, 5)),
]
NO_DECAY = ['layers.0.norm', 'layers.0.bias']


def f32_b64(t):
    a = np.ascontiguousarray(t.detach().cpu().numpy().astype('<f4'))
    return base64.b64encode(a.tobytes()).decode('ascii')


# ----- schedules (step = updates applied so far, 0 for the first) --------------------------------

def schedule_fn(spec):
    if isinstance(spec, (int, float)):
        return lambda step: float(spec)
    kind = spec['kind']
    if kind == 'constant':
        return lambda step: spec['lr']
    if kind == 'linear':
        return lambda step: spec['init'] + (min(step, spec['steps']) / spec['steps']) * (spec['end'] - spec['init'])
    if kind == 'cosine':
        def cosine(step):
            decay = 0.5 * (1 + math.cos(math.pi * min(step, spec['decaySteps']) / spec['decaySteps']))
            return spec['floor'] + (spec['init'] - spec['floor']) * decay
        return cosine
    if kind == 'step':
        return lambda step: spec['init'] * spec['gamma'] ** (step // spec['stepSize'])
    if kind == 'warmup':
        after = schedule_fn(spec['after'])
        warmup = spec['warmupSteps']
        return lambda step: after(0) * (step + 1) / warmup if step < warmup else after(step - warmup)
    if kind == 'join':
        parts = [schedule_fn(s) for s in spec['schedules']]
        starts = [0] + spec['boundaries']

        def joined(step):
            index = 0
            while index + 1 < len(starts) and step >= starts[index + 1]:
                index += 1
            return parts[index](step - starts[index])
        return joined
    raise ValueError(kind)


# ----- Lion: PyTorch has none; this is lucidrains/lion-pytorch's update, written out --------------

class Lion(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, (beta1, beta2), wd = group['lr'], group['betas'], group['weight_decay']
            for p in group['params']:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state['exp_avg'] = torch.zeros_like(p)
                exp_avg = state['exp_avg']
                p.mul_(1 - lr * wd)
                update = exp_avg.clone().mul_(beta1).add(p.grad, alpha=1 - beta1).sign_()
                p.add_(update, alpha=-lr)
                exp_avg.mul_(beta2).add_(p.grad, alpha=1 - beta2)


def make_optimizer(kind, named, options, groups):
    """torch param groups from the TS-style spec: `groups` pick tensors by name, the rest default."""
    lr0 = schedule_fn(options['learningRate'])(0)
    torch_names = {'momentum': 'momentum', 'dampening': 'dampening', 'nesterov': 'nesterov',
                   'weightDecay': 'weight_decay', 'eps': 'eps', 'betas': 'betas'}
    defaults = {torch_names[k]: (tuple(v) if k == 'betas' else v) for k, v in options.items() if k in torch_names}
    taken = set()
    param_groups = []
    for group in groups:
        params = [named[n] for n in group['params'] if n not in taken]
        taken.update(group['params'])
        overrides = {torch_names[k]: v for k, v in group.items() if k in torch_names}
        param_groups.append({'params': params, **overrides})
    param_groups.append({'params': [p for n, p in named.items() if n not in taken]})
    cls = {'SGD': torch.optim.SGD, 'Adam': torch.optim.Adam, 'AdamW': torch.optim.AdamW, 'Lion': Lion}[kind]
    if kind in ('Adam', 'AdamW'):
        defaults['foreach'] = False  # the single-tensor loop: plain per-tensor semantics
    if kind == 'SGD':
        defaults['foreach'] = False
    return cls(param_groups, lr=lr0, **defaults)


def state_fields(kind, options, groups, name):
    if kind in ('Adam', 'AdamW'):
        return {'m': 'exp_avg', 'v': 'exp_avg_sq'}
    if kind == 'Lion':
        return {'m': 'exp_avg'}
    momentum = options.get('momentum', 0)
    for group in groups:
        if name in group['params']:
            momentum = group.get('momentum', momentum)
            break
    return {'momentum': 'momentum_buffer'} if momentum != 0 else {}


def run_case(case, rng):
    kind, options, groups = case['optimizer'], case['options'], case.get('groups', [])
    grad_scale = case.get('gradScale', 1.0)
    init = {n: (rng.standard_normal(s) * 0.5).astype(np.float32) for n, s in TENSORS}
    grads = []
    for step in range(STEPS):
        # Gradient size varies from step to step (0.2x to 3x) so clipping acts on some steps only.
        step_scale = np.float32(grad_scale * (0.2 + 2.8 * rng.random()))
        grads.append({n: (rng.standard_normal(s) * step_scale).astype(np.float32) for n, s in TENSORS})
    named = {n: torch.nn.Parameter(torch.from_numpy(init[n].copy())) for n, _ in TENSORS}
    opt = make_optimizer(kind, named, options, groups)
    lr_of = schedule_fn(options['learningRate'])
    lrs, norms, after_first = [], [], None
    for step in range(STEPS):
        for n, p in named.items():
            p.grad = torch.from_numpy(grads[step][n].copy())
        lr = lr_of(step)
        lrs.append(lr)
        for group in opt.param_groups:
            group['lr'] = lr
        if case.get('clip') is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(list(named.values()), case['clip'])))
        opt.step()
        if step == 0:
            after_first = {n: f32_b64(p) for n, p in named.items()}
    state = {}
    for n, p in named.items():
        fields = state_fields(kind, options, groups, n)
        state[n] = {ours: f32_b64(opt.state[p][theirs]) for ours, theirs in fields.items()}
        if kind in ('Adam', 'AdamW'):
            assert int(opt.state[p]['step']) == STEPS
    return {
        **case,
        'steps': STEPS,
        'tensors': [{'name': n, 'shape': list(s)} for n, s in TENSORS],
        'init': {n: base64.b64encode(init[n].astype('<f4').tobytes()).decode('ascii') for n, _ in TENSORS},
        'grads': [{n: base64.b64encode(g[n].astype('<f4').tobytes()).decode('ascii') for n, _ in TENSORS}
                  for g in grads],
        'lrs': lrs,
        'norms': norms if case.get('clip') is not None else None,
        'afterFirstStep': after_first,
        'final': {n: f32_b64(p) for n, p in named.items()},
        'state': state,
    }


NO_DECAY_GROUP = {'params': NO_DECAY, 'weightDecay': 0}
WARMUP_COSINE = {'kind': 'warmup', 'warmupSteps': 5,
                 'after': {'kind': 'cosine', 'init': 1e-2, 'decaySteps': 15, 'floor': 1e-3}}

CASES = [
    {'name': 'sgd-plain', 'optimizer': 'SGD', 'options': {'learningRate': 0.05}},
    {'name': 'sgd-momentum-dampening-l2', 'optimizer': 'SGD',
     'options': {'learningRate': 0.02, 'momentum': 0.9, 'dampening': 0.1, 'weightDecay': 1e-3}},
    {'name': 'sgd-nesterov-groups-clip-stepdecay', 'optimizer': 'SGD',
     'options': {'learningRate': {'kind': 'step', 'init': 0.05, 'gamma': 0.5, 'stepSize': 7},
                 'momentum': 0.8, 'nesterov': True, 'weightDecay': 5e-4},
     'groups': [NO_DECAY_GROUP], 'clip': 1.0},
    {'name': 'adam-defaults', 'optimizer': 'Adam', 'options': {'learningRate': 1e-3}},
    {'name': 'adam-l2-warmup-cosine-clip', 'optimizer': 'Adam',
     'options': {'learningRate': WARMUP_COSINE, 'betas': [0.85, 0.98], 'eps': 1e-6, 'weightDecay': 0.05},
     'clip': 2.0},
    {'name': 'adamw-defaults', 'optimizer': 'AdamW', 'options': {'learningRate': 1e-3}},
    {'name': 'adamw-groups-clip-joined-schedule', 'optimizer': 'AdamW',
     'options': {'learningRate': {'kind': 'join', 'boundaries': [4],
                                  'schedules': [{'kind': 'linear', 'init': 0, 'end': 3e-3, 'steps': 4},
                                                {'kind': 'cosine', 'init': 3e-3, 'decaySteps': 16, 'floor': 3e-4}]},
                 'betas': [0.9, 0.95], 'eps': 1e-8, 'weightDecay': 0.1},
     'groups': [NO_DECAY_GROUP], 'clip': 0.5},
    {'name': 'adamw-tiny-gradients', 'optimizer': 'AdamW',
     'options': {'learningRate': 1e-2, 'weightDecay': 0.01}, 'gradScale': 1e-7},
    {'name': 'lion-decay', 'optimizer': 'Lion', 'options': {'learningRate': 3e-4, 'weightDecay': 0.1}},
    {'name': 'lion-groups-warmup-cosine-clip', 'optimizer': 'Lion',
     'options': {'learningRate': WARMUP_COSINE, 'betas': [0.95, 0.98], 'weightDecay': 0.5},
     'groups': [NO_DECAY_GROUP], 'clip': 1.0},
]


def compact_json(fixture):
    """One line per case: the file stays small and its diffs readable case by case."""
    lines = [f' {json.dumps(k)}: {json.dumps(v)},' for k, v in fixture.items() if k != 'cases']
    cases = ',\n'.join('  ' + json.dumps(case, separators=(',', ':')) for case in fixture['cases'])
    return '{\n' + '\n'.join(lines) + '\n "cases": [\n' + cases + '\n ]\n}\n'


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    fixture = {
        'generator': 'tools/refgen/optim_fixtures.py',
        'torch': torch.__version__,
        'numpy': np.__version__,
        'note': 'fp32 arrays are base64 of little-endian float32 bytes; lrs are float64',
        'cases': [run_case(case, rng) for case in CASES],
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as f:
        f.write(compact_json(fixture))
    print(f'wrote {os.path.relpath(OUT)} ({len(CASES)} cases, {STEPS} steps each, torch {torch.__version__})')


if __name__ == '__main__':
    sys.exit(main())
