#!/usr/bin/env python3
"""Gradient parity fixtures for ane-autograd: a Llama block (MHA and GQA) and a two-layer ReLU MLP.

Each fixture records what PyTorch's autograd computes for one small model with seeded random
weights and inputs: the loss (mean softmax cross-entropy against seeded integer targets), the
gradient of every parameter and of the input, and a few forward activations for debugging. The
tests replay them (tests/autograd-parity) without Python or torch.

The model, written out here the way Hugging Face's modeling_llama.py computes it (no transformers
dependency):

    x [S, D] -> h   = x + o_proj(attention(rmsnorm(x; input_layernorm)))
                out = h + down_proj(silu(gate_proj(n)) * up_proj(n)),  n = rmsnorm(h; post_attention_layernorm)
             -> logits = lm_head(rmsnorm(out; norm)) [S, V] -> loss = mean_s CE(logits[s], targets[s])

    rmsnorm(x; g) = g * x / sqrt(mean_channels(x^2) + eps)                   (LlamaRMSNorm, eps 1e-5)
    attention:      q, k, v = q_proj(x), k_proj(x), v_proj(x), split into heads of head_dim
                    (channel c = head * head_dim + d, HF's view(S, H, HD));
                    RoPE rotate-half (HF's rotate_half: element i pairs with i + HD/2):
                      inv_freq[i] = theta^(-2i/HD), angle[p, j] = p * inv_freq[j mod HD/2],
                      q' = q cos + rotate_half(q) sin,  rotate_half([x1, x2]) = [-x2, x1];
                    GQA: query head h reads KV head h // (H / KV) (HF's repeat_kv);
                    scores = q' k'^T / sqrt(HD), causal mask (key > query excluded), softmax over
                    keys, probs v, heads merged back, o_proj.

ane-ir layout of what is stored: weights are [out, in] exactly like nn.Linear.weight (same bytes);
activations are channels-first [C, S], so the input x, its gradient and the stored activations are
the transpose of HF's [S, C] hidden states; norm gains are [D]; targets are [S] int32.

Numerics: every weight and input is rounded to an fp16-representable value first (a fp16 device
sees exactly the same numbers); the model then runs in float64 in PyTorch and every result is
stored as float32, so the fixture is the exact gradient of those inputs up to float32 rounding and
does not depend on the CPU's fp32 kernels. The RoPE tables are computed in float64 and are NOT
rounded to fp16 (ane-ir's fp16 tables are part of the device error the replay bounds).

Run from the repository root:  pnpm refgen llama   (or /usr/bin/python3 tools/refgen/llama_block_fixtures.py)
Writes tests/autograd-parity/fixtures/{llama-block-mha,llama-block-gqa,mlp-relu}.json.
"""
import base64
import json
import math
import os
import sys

import numpy as np
import torch

OUT_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'autograd-parity', 'fixtures')

LLAMA = {'dim': 64, 'heads': 4, 'headDim': 16, 'hidden': 128, 'seq': 32, 'vocab': 64, 'eps': 1e-5,
         'ropeTheta': 10000.0, 'ropeConvention': 'rotate-half'}
MLP = {'inputs': 16, 'hidden': 32, 'classes': 8, 'positions': 24}

# Weight scales: large enough that attention is far from uniform and the softmax of the classifier
# is not flat, small enough that every forward value and gradient is comfortable in fp16.
WEIGHT_STD = 0.1
GAIN_STD = 0.1  # norm gains are 1 + N(0, GAIN_STD^2): not all ones, so a missing gain shows

LAYOUT_NOTE = ('ane-ir layout: weights [out, in] like nn.Linear.weight; activations channels-first [C, S] '
               '(the transpose of HF hidden states [S, C]); norm gains [D]; targets [S] int32. '
               'Arrays are base64 of little-endian float32 (int32 for targets). Inputs and weights are '
               'fp16-representable; the model ran in float64 in PyTorch and results were rounded to float32. '
               'Gradients are of the mean cross-entropy (loss scale 1).')


LLAMA_CONVENTIONS = (
    'h = x + wo attn(rmsnorm(x; attention_norm)); out = h + w2 (silu(w1 n) * w3 n), n = rmsnorm(h; ffn_norm); '
    'logits = output rmsnorm(out; norm); loss = mean over positions of cross-entropy(logits[:, s], targets[s]). '
    'rmsnorm(x; g)[c, s] = g[c] x[c, s] / sqrt(mean_c x[c, s]^2 + eps). Heads: channel c = head * headDim + j '
    '(q rows of wq, likewise k, v). RoPE rotate-half (HF rotate_half): element j pairs with j +- headDim/2, '
    'angle = position * ropeTheta^(-2 (j mod headDim/2) / headDim), q\' = q cos + [-q2, q1] sin; tables in float64, '
    'not rounded to fp16. Scores q\'k\'^T / sqrt(headDim), causal (key <= query), softmax over keys. GQA: query head h '
    'reads KV head floor(h / (heads / kvHeads)) (HF repeat_kv).')


def fp16_round(a):
    return a.astype(np.float16).astype(np.float32)


def b64(a, dtype='<f4'):
    return base64.b64encode(np.ascontiguousarray(np.asarray(a).astype(dtype)).tobytes()).decode('ascii')


def leaf(a):
    """A float64 leaf tensor holding the (fp16-representable, float32) numpy array a."""
    return torch.tensor(a.astype(np.float64), dtype=torch.float64, requires_grad=True)


def to_np(t):
    return t.detach().cpu().numpy()


# ----- the Llama block, as Hugging Face's modeling_llama.py computes it ----------------------------

def rms_norm(x, gain, eps):
    """LlamaRMSNorm: x [S, D], gain [D]."""
    variance = x.pow(2).mean(-1, keepdim=True)
    return gain * (x * torch.rsqrt(variance + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_tables(seq, head_dim, theta):
    """cos, sin [S, HD] (LlamaRotaryEmbedding: the frequencies concatenated twice)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = torch.outer(torch.arange(seq, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def repeat_kv(x, n_rep):
    """[KV, S, HD] -> [KV * n_rep, S, HD]: query head h reads KV head h // n_rep."""
    kv, seq, head_dim = x.shape
    return x[:, None, :, :].expand(kv, n_rep, seq, head_dim).reshape(kv * n_rep, seq, head_dim)


def attention(x, p, cfg):
    seq, heads, kv_heads, head_dim = cfg['seq'], cfg['heads'], cfg['kvHeads'], cfg['headDim']
    q = (x @ p['wq'].T).view(seq, heads, head_dim).transpose(0, 1)       # [H, S, HD]
    k = (x @ p['wk'].T).view(seq, kv_heads, head_dim).transpose(0, 1)    # [KV, S, HD]
    v = (x @ p['wv'].T).view(seq, kv_heads, head_dim).transpose(0, 1)
    cos, sin = rope_tables(seq, head_dim, cfg['ropeTheta'])
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k = repeat_kv(k, heads // kv_heads)
    v = repeat_kv(v, heads // kv_heads)
    scores = q @ k.transpose(1, 2) / math.sqrt(head_dim)                # [H, S(query), S(key)]
    causal = torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(causal, float('-inf'))
    probs = torch.softmax(scores, dim=-1)
    context = (probs @ v).transpose(0, 1).reshape(seq, heads * head_dim)  # [S, H*HD]
    return context @ p['wo'].T


def llama_forward(x, p, cfg):
    """x [S, D] -> (h, out, logits [S, V]); p by short name ('wq', 'attention_norm', 'norm', 'output')."""
    eps = cfg['eps']
    h = x + attention(rms_norm(x, p['attention_norm'], eps), p, cfg)
    n = rms_norm(h, p['ffn_norm'], eps)
    out = h + (torch.nn.functional.silu(n @ p['w1'].T) * (n @ p['w3'].T)) @ p['w2'].T
    logits = rms_norm(out, p['norm'], eps) @ p['output'].T
    return h, out, logits


def llama_params(cfg):
    """(ane-ir name, HF state-dict name, shape, kind), in the order the fixture stores them."""
    d, hid, hd, voc = cfg['dim'], cfg['hidden'], cfg['headDim'], cfg['vocab']
    q_rows, kv_rows = cfg['heads'] * hd, cfg['kvHeads'] * hd
    layer = 'model.layers.0'
    return [
        ('layers.0.attention_norm', f'{layer}.input_layernorm.weight', (d,), 'gain'),
        ('layers.0.wq', f'{layer}.self_attn.q_proj.weight', (q_rows, d), 'weight'),
        ('layers.0.wk', f'{layer}.self_attn.k_proj.weight', (kv_rows, d), 'weight'),
        ('layers.0.wv', f'{layer}.self_attn.v_proj.weight', (kv_rows, d), 'weight'),
        ('layers.0.wo', f'{layer}.self_attn.o_proj.weight', (d, q_rows), 'weight'),
        ('layers.0.ffn_norm', f'{layer}.post_attention_layernorm.weight', (d,), 'gain'),
        ('layers.0.w1', f'{layer}.mlp.gate_proj.weight', (hid, d), 'weight'),
        ('layers.0.w3', f'{layer}.mlp.up_proj.weight', (hid, d), 'weight'),
        ('layers.0.w2', f'{layer}.mlp.down_proj.weight', (d, hid), 'weight'),
        ('norm', 'model.norm.weight', (d,), 'gain'),
        ('output', 'lm_head.weight', (voc, d), 'weight'),
    ]


def llama_fixture(name, kv_heads, seed):
    cfg = {**LLAMA, 'kvHeads': kv_heads}
    rng = np.random.default_rng(seed)
    specs = llama_params(cfg)
    values = {}
    for ir_name, _, shape, kind in specs:
        noise = rng.standard_normal(shape)
        values[ir_name] = fp16_round(1.0 + GAIN_STD * noise if kind == 'gain' else WEIGHT_STD * noise)
    x_cs = fp16_round(rng.standard_normal((cfg['dim'], cfg['seq'])))        # [D, S], ane-ir layout
    targets = rng.integers(0, cfg['vocab'], size=cfg['seq'])

    params = {n: leaf(values[n]) for n in values}
    x = leaf(np.ascontiguousarray(x_cs.T))                                     # [S, D], HF layout
    h, out, logits = llama_forward(x, {n.split('.')[-1]: t for n, t in params.items()}, cfg)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets), reduction='mean')
    loss.backward()

    tensors = [
        {'name': 'x', 'hf': 'hidden_states (HF [S, D]; stored transposed, [D, S])', 'role': 'input',
         'shape': [cfg['dim'], cfg['seq']], 'data': b64(x_cs), 'grad': b64(to_np(x.grad).T)},
        {'name': 'targets', 'hf': 'labels', 'role': 'target', 'dtype': 'int32', 'shape': [cfg['seq']],
         'data': b64(targets, '<i4')},
    ]
    for ir_name, hf_name, shape, _ in specs:
        tensors.append({'name': ir_name, 'hf': hf_name, 'role': 'param', 'shape': list(shape),
                        'data': b64(values[ir_name]), 'grad': b64(to_np(params[ir_name].grad))})
    for act_name, value, what in [('h', h, 'x + attention(attention_norm(x))'),
                                  ('out', out, 'the block output, h + ffn(ffn_norm(h))'),
                                  ('logits', logits, 'output(norm(out))')]:
        tensors.append({'name': act_name, 'hf': what, 'role': 'activation',
                        'shape': [value.shape[1], value.shape[0]], 'data': b64(to_np(value).T)})
    variant = 'MHA' if kv_heads == cfg['heads'] else f'GQA ({cfg["heads"] // kv_heads} query heads per KV head)'
    return {
        'name': name,
        'model': f'one Llama block ({variant}), a final RMSNorm, a classifier and mean cross-entropy',
        'conventions': LLAMA_CONVENTIONS,
        'config': cfg,
        'seed': seed,
        'loss': float(loss),
        'tensors': tensors,
    }


# ----- a two-layer ReLU MLP --------------------------------------------------------------------------

# A fp16 device rounds w1 x before adding b1 (error up to ~2^-11 |w1 x|, about 1e-3 here), so a
# pre-activation closer to zero than that could change sign on the device and flip its ReLU: the
# fixture takes the first seed from MLP_SEED whose smallest |pre-activation| is at least this.
RELU_MARGIN = 0.004


def mlp_fixture(name, first_seed):
    seed = first_seed
    while True:
        fixture = mlp_fixture_for_seed(name, seed)
        if fixture['reluMargin'] >= RELU_MARGIN:
            return fixture
        seed += 1


def mlp_fixture_for_seed(name, seed):
    cfg = dict(MLP)
    rng = np.random.default_rng(seed)
    n_in, n_hid, n_out, n_pos = cfg['inputs'], cfg['hidden'], cfg['classes'], cfg['positions']
    specs = [('w1', 'fc1.weight', (n_hid, n_in), 1 / math.sqrt(n_in)),
             ('b1', 'fc1.bias', (n_hid,), 0.1),
             ('w2', 'fc2.weight', (n_out, n_hid), 1 / math.sqrt(n_hid)),
             ('b2', 'fc2.bias', (n_out,), 0.1)]
    values = {n: fp16_round(std * rng.standard_normal(shape)) for n, _, shape, std in specs}
    x_cs = fp16_round(rng.standard_normal((n_in, n_pos)))                      # [IN, N]
    targets = rng.integers(0, n_out, size=n_pos)

    params = {n: leaf(values[n]) for n in values}
    x = leaf(np.ascontiguousarray(x_cs.T))                                     # [N, IN]
    pre = x @ params['w1'].T + params['b1']
    logits = torch.relu(pre) @ params['w2'].T + params['b2']
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets), reduction='mean')
    loss.backward()
    margin = float(np.abs(to_np(pre)).min())

    tensors = [
        {'name': 'x', 'hf': 'input (PyTorch [N, IN]; stored transposed, [IN, N])', 'role': 'input',
         'shape': [n_in, n_pos], 'data': b64(x_cs), 'grad': b64(to_np(x.grad).T)},
        {'name': 'targets', 'hf': 'target', 'role': 'target', 'dtype': 'int32', 'shape': [n_pos],
         'data': b64(targets, '<i4')},
    ]
    for ir_name, torch_name, shape, _ in specs:
        tensors.append({'name': ir_name, 'hf': torch_name, 'role': 'param', 'shape': list(shape),
                        'data': b64(values[ir_name]), 'grad': b64(to_np(params[ir_name].grad))})
    tensors.append({'name': 'pre', 'hf': 'w1 x + b1 (before the ReLU)', 'role': 'activation',
                    'shape': [n_hid, n_pos], 'data': b64(to_np(pre).T)})
    tensors.append({'name': 'logits', 'hf': 'w2 relu(pre) + b2', 'role': 'activation',
                    'shape': [n_out, n_pos], 'data': b64(to_np(logits).T)})
    return {
        'name': name,
        'model': 'logits = w2 relu(w1 x + b1) + b2, mean cross-entropy over the positions',
        'config': cfg,
        'seed': seed,
        'loss': float(loss),
        # Smallest |pre-activation|: a device whose error exceeds it may flip a ReLU.
        'reluMargin': margin,
        'tensors': tensors,
    }


def compact_json(fixture):
    """One line per tensor: the diffs stay readable tensor by tensor."""
    lines = [f' {json.dumps(k)}: {json.dumps(v)},' for k, v in fixture.items() if k != 'tensors']
    tensors = ',\n'.join('  ' + json.dumps(t, separators=(',', ':')) for t in fixture['tensors'])
    return '{\n' + '\n'.join(lines) + '\n "tensors": [\n' + tensors + '\n ]\n}\n'


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)  # nothing here draws from torch's generator; set anyway
    header = {
        'generator': 'tools/refgen/llama_block_fixtures.py',
        'torch': torch.__version__,
        'numpy': np.__version__,
        'note': LAYOUT_NOTE,
    }
    fixtures = [
        llama_fixture('llama-block-mha', kv_heads=4, seed=20241201),
        llama_fixture('llama-block-gqa', kv_heads=2, seed=20241202),
        mlp_fixture('mlp-relu', first_seed=20241203),
    ]
    os.makedirs(OUT_DIR, exist_ok=True)
    for fixture in fixtures:
        path = os.path.join(OUT_DIR, f'{fixture["name"]}.json')
        with open(path, 'w') as f:
            f.write(compact_json({**header, **fixture}))
        print(f'wrote {os.path.relpath(path)} (loss {fixture["loss"]:.6f}, torch {torch.__version__})')


if __name__ == '__main__':
    sys.exit(main())
