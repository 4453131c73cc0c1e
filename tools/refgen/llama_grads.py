#!/usr/bin/env python3
"""The `ane-train grads` fixtures: a 2-layer GQA Llama and a 2-layer Qwen3-style model (per-head
q/k RMSNorm), their weights, tokens and PyTorch's gradients.

What `ane-train grads` (ane-train's `computeGradients`) must reproduce: the mean next-token
cross-entropy of a small Llama over a batch of token sequences and the gradient of every parameter
under its Hugging Face name. The fixture is exactly what a user hands the CLI (a Hugging Face
`config.json`, a safetensors file of weights under HF names, a token file) plus what PyTorch
computed from them (`expected.safetensors`).

The model, written out here the way Hugging Face's modeling_llama.py computes it (no transformers
dependency), for each of the B sequences of S + 1 tokens t[0..S]:

    x = embed_tokens[t[0..S-1]]                                             [S, D]
    for each layer:
        h = x + o_proj(attention(rmsnorm(x; input_layernorm)))
        x = h + down_proj(silu(gate_proj(n)) * up_proj(n)),  n = rmsnorm(h; post_attention_layernorm)
    logits = lm_head(rmsnorm(x; model.norm))                                [S, V]
    (tie_word_embeddings: lm_head.weight IS model.embed_tokens.weight)
    loss = mean over all B x S positions of CE(logits[s], t[s + 1])

    rmsnorm(x; g) = g * x * rsqrt(mean_channels(x^2) + eps)                (LlamaRMSNorm)
    attention: q, k, v = q_proj(x), k_proj(x), v_proj(x), split into heads of head_dim
               (channel c = head * head_dim + d, HF's view(S, H, HD));
               Qwen3 only (model_type 'qwen3'): each head of q and of k is RMS-normalized over its
               head_dim features with the gain self_attn.q_norm.weight / k_norm.weight [head_dim]
               (eps rms_norm_eps), after the projections and BEFORE RoPE (Qwen3Attention);
               RoPE rotate-half with rope_theta, positions 0..S-1 in each sequence:
                 inv_freq[i] = theta^(-2i/HD), angle[p, j] = p * inv_freq[j mod HD/2],
                 q' = q cos + rotate_half(q) sin,  rotate_half([x1, x2]) = [-x2, x1];
               GQA: query head h reads KV head h // (H / KV) (HF's repeat_kv);
               scores = q' k'^T / sqrt(HD), causal (key <= query), softmax over keys, probs v,
               heads merged back, o_proj.

The fixtures (one model implementation; the q/k norm is the only difference in the computation):
  llama-gqa: 2 layers, hidden_size 128, 4 heads (head_dim 32), 2 KV heads, intermediate_size 256,
             vocab 256, rms_norm_eps 1e-5, rope_theta 10000, tie_word_embeddings true; batch 2, seq 64.
  qwen3-gqa: model_type qwen3, 2 layers, hidden_size 128, 4 heads, 2 KV heads, head_dim 48 (set
             explicitly and != hidden / heads = 32, as Qwen3 does: q_proj is [192, 128]),
             intermediate_size 256, vocab 256, rms_norm_eps 1e-6, rope_theta 1e6, tied; batch 2,
             seq 32. Its expected.safetensors metadata also holds "loss_without_qk_norm": PyTorch's
             loss of the same weights with the q/k norms left out (the model a Llama config gives),
             so a test can show that a model missing the q/k norm is told apart. The script also
             refuses weights at which the replay's 1% bound could not tell the q/k norm before RoPE
             (Qwen3) from the same norm after it (check_tells_qk_norm_apart; the loss cannot).
Weights: matrices and the embedding ~ N(0, 0.02^2) (HF's initializer_range), norm gains
(q_norm and k_norm included) 1 + N(0, 0.1^2) (not all ones, so a missing gain or a wrong gain
gradient shows); one seeded numpy generator per fixture, drawn in Hugging Face's parameter order;
stored as F16 in weights.safetensors, and PyTorch computes in float64 from exactly those F16 values. Tokens are uniform in [0, 256), stored as B x (S + 1) little-endian uint16.

expected.safetensors: every parameter's gradient (d loss / d param at loss scale 1) under its HF
name, stored as F16 (the script checks that F16 storage changes no tensor by more than 0.05% of its
largest magnitude, far inside the 1% bound the replay uses), and the loss (float64 repr) in the
metadata under "loss". Sizes: llama-gqa 1.32 MB, qwen3-gqa 1.52 MB (378k parameters: 0.76 MB of F16
weights plus 0.76 MB of F16 gradients; F16 is the smallest dtype ane-train reads).

Run from the repository root:  pnpm refgen llama_grads   (or /usr/bin/python3 tools/refgen/llama_grads.py
[llama-gqa] [qwen3-gqa]: the named fixtures only; both when none is named)
Writes packages/ane-train/fixtures/{llama-gqa,qwen3-gqa}/{config.json,weights.safetensors,tokens.bin,expected.safetensors}.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

FIXTURES_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'packages', 'ane-train', 'fixtures')

LLAMA_CONFIG = {
    'architectures': ['LlamaForCausalLM'],
    'model_type': 'llama',
    'hidden_act': 'silu',
    'hidden_size': 128,
    'intermediate_size': 256,
    'num_hidden_layers': 2,
    'num_attention_heads': 4,
    'num_key_value_heads': 2,
    'head_dim': 32,
    'vocab_size': 256,
    'rms_norm_eps': 1e-05,
    'rope_theta': 10000.0,
    'tie_word_embeddings': True,
    'max_position_embeddings': 64,
    'torch_dtype': 'float16',
}
QWEN3_CONFIG = {
    'architectures': ['Qwen3ForCausalLM'],
    'model_type': 'qwen3',
    'hidden_act': 'silu',
    'hidden_size': 128,
    'intermediate_size': 256,
    'num_hidden_layers': 2,
    'num_attention_heads': 4,
    'num_key_value_heads': 2,
    'head_dim': 48,
    'vocab_size': 256,
    'rms_norm_eps': 1e-06,
    'rope_theta': 1000000.0,
    'tie_word_embeddings': True,
    'max_position_embeddings': 32,
    'attention_bias': False,
    'use_sliding_window': False,
    'torch_dtype': 'float16',
}
# name -> (config, batch, seq, seed)
FIXTURES = {
    'llama-gqa': (LLAMA_CONFIG, 2, 64, 20261205),
    'qwen3-gqa': (QWEN3_CONFIG, 2, 32, 20261206),
}
WEIGHT_STD = 0.02
GAIN_STD = 0.1
# F16 storage of the expected gradients may move no element by more than this fraction of its
# tensor's largest magnitude (the replay's bound is 1%).
F16_STORAGE_TOLERANCE = 5e-4
# The replay's bound: max |ours - PyTorch| <= 1% of the tensor's largest PyTorch gradient.
REPLAY_BOUND = 0.01


def has_qk_norm(cfg):
    """Qwen3 normalizes each head of q and k (q_norm, k_norm); Llama does not."""
    return cfg['model_type'] == 'qwen3'


def parameter_specs(cfg):
    """(HF name, shape, kind) in Hugging Face's order."""
    d, f, v = cfg['hidden_size'], cfg['intermediate_size'], cfg['vocab_size']
    hd = cfg['head_dim']
    q_rows, kv_rows = cfg['num_attention_heads'] * hd, cfg['num_key_value_heads'] * hd
    specs = [('model.embed_tokens.weight', (v, d), 'weight')]
    for layer in range(cfg['num_hidden_layers']):
        p = f'model.layers.{layer}'
        specs += [
            (f'{p}.self_attn.q_proj.weight', (q_rows, d), 'weight'),
            (f'{p}.self_attn.k_proj.weight', (kv_rows, d), 'weight'),
            (f'{p}.self_attn.v_proj.weight', (kv_rows, d), 'weight'),
            (f'{p}.self_attn.o_proj.weight', (d, q_rows), 'weight'),
        ]
        if has_qk_norm(cfg):
            specs += [
                (f'{p}.self_attn.q_norm.weight', (hd,), 'gain'),
                (f'{p}.self_attn.k_norm.weight', (hd,), 'gain'),
            ]
        specs += [
            (f'{p}.mlp.gate_proj.weight', (f, d), 'weight'),
            (f'{p}.mlp.up_proj.weight', (f, d), 'weight'),
            (f'{p}.mlp.down_proj.weight', (d, f), 'weight'),
            (f'{p}.input_layernorm.weight', (d,), 'gain'),
            (f'{p}.post_attention_layernorm.weight', (d,), 'gain'),
        ]
    specs.append(('model.norm.weight', (d,), 'gain'))
    if not cfg['tie_word_embeddings']:
        specs.append(('lm_head.weight', (v, d), 'weight'))
    return specs


# ----- the model, as Hugging Face's modeling_llama.py computes it --------------------------------

def rms_norm(x, gain, eps):
    """LlamaRMSNorm: x [..., D], gain [D]."""
    return gain * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


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
    """[B, KV, S, HD] -> [B, KV * n_rep, S, HD]: query head h reads KV head h // n_rep."""
    b, kv, seq, head_dim = x.shape
    return x[:, :, None, :, :].expand(b, kv, n_rep, seq, head_dim).reshape(b, kv * n_rep, seq, head_dim)


def attention(x, p, prefix, cfg, qk_norm):
    b, seq, _ = x.shape
    heads, kv_heads, head_dim = cfg['num_attention_heads'], cfg['num_key_value_heads'], cfg['head_dim']
    q = (x @ p[f'{prefix}.q_proj.weight'].T).view(b, seq, heads, head_dim).transpose(1, 2)  # [B, H, S, HD]
    k = (x @ p[f'{prefix}.k_proj.weight'].T).view(b, seq, kv_heads, head_dim).transpose(1, 2)
    v = (x @ p[f'{prefix}.v_proj.weight'].T).view(b, seq, kv_heads, head_dim).transpose(1, 2)
    def norm_heads(q, k):  # per head, over head_dim
        return (rms_norm(q, p[f'{prefix}.q_norm.weight'], cfg['rms_norm_eps']),
                rms_norm(k, p[f'{prefix}.k_norm.weight'], cfg['rms_norm_eps']))
    if qk_norm == 'before-rope':  # Qwen3Attention
        q, k = norm_heads(q, k)
    cos, sin = rope_tables(seq, head_dim, cfg['rope_theta'])
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    if qk_norm == 'after-rope':  # not Qwen3: only the generator's check that the fixture tells the two apart
        q, k = norm_heads(q, k)
    k = repeat_kv(k, heads // kv_heads)
    v = repeat_kv(v, heads // kv_heads)
    scores = q @ k.transpose(2, 3) / math.sqrt(head_dim)                      # [B, H, S(query), S(key)]
    causal = torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1)
    probs = torch.softmax(scores.masked_fill(causal, float('-inf')), dim=-1)
    context = (probs @ v).transpose(1, 2).reshape(b, seq, heads * head_dim)   # [B, S, H*HD]
    return context @ p[f'{prefix}.o_proj.weight'].T


def llama_loss(p, tokens, cfg, qk_norm=None):
    """tokens [B, S + 1] int64 -> mean next-token cross-entropy over all B x S positions.
    qk_norm: None (the default) applies Qwen3's q/k norm before RoPE when the config is a Qwen3 one;
    False leaves it out (the control model, the same weights without it); 'before-rope' (Qwen3) or
    'after-rope' (a wrong model) place it."""
    if qk_norm is None:
        qk_norm = 'before-rope' if has_qk_norm(cfg) else False
    eps = cfg['rms_norm_eps']
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    x = p['model.embed_tokens.weight'][inputs]                                # [B, S, D]
    for layer in range(cfg['num_hidden_layers']):
        pre = f'model.layers.{layer}'
        h = x + attention(rms_norm(x, p[f'{pre}.input_layernorm.weight'], eps), p, f'{pre}.self_attn', cfg, qk_norm)
        n = rms_norm(h, p[f'{pre}.post_attention_layernorm.weight'], eps)
        gate = torch.nn.functional.silu(n @ p[f'{pre}.mlp.gate_proj.weight'].T)
        x = h + (gate * (n @ p[f'{pre}.mlp.up_proj.weight'].T)) @ p[f'{pre}.mlp.down_proj.weight'].T
    head = p['model.embed_tokens.weight'] if cfg['tie_word_embeddings'] else p['lm_head.weight']
    logits = rms_norm(x, p['model.norm.weight'], eps) @ head.T                # [B, S, V]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


# ----- safetensors, written by hand (the format: 8-byte LE header length, JSON header, data) -------

def write_safetensors(path, tensors, metadata):
    """tensors: {name: (dtype 'F16' | 'F32', numpy array)}, stored in name order, header padded
    with spaces to a multiple of 8 bytes (as the safetensors library does)."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header['__metadata__'] = metadata
    for name in sorted(tensors):
        dtype, array = tensors[name]
        data = np.ascontiguousarray(array.astype('<f2' if dtype == 'F16' else '<f4')).tobytes()
        header[name] = {'dtype': dtype, 'shape': list(array.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def check_tells_qk_norm_apart(params, token_ids, cfg, expected):
    """The fixture must let the replay's bound (1% of a tensor's largest gradient) tell Qwen3's q/k
    norm from the same norm placed after RoPE, through the q/k gains' gradients and through the
    others'. With gains of exactly 1 the two models are the same function (RoPE rotates pairs of
    features, which keeps each head's RMS), so only the gains' own gradients would differ; hence
    gains 1 + N(0, 0.1^2). The loss alone cannot tell them apart here (about 4e-6 relative)."""
    wrong = {n: t.detach().clone().requires_grad_(True) for n, t in params.items()}
    llama_loss(wrong, token_ids, cfg, qk_norm='after-rope').backward()
    gains, others = [], []
    for name, (_, grad) in expected.items():
        miss = np.abs(wrong[name].grad.numpy() - grad).max() / np.abs(grad).max()
        (gains if name.endswith(('.q_norm.weight', '.k_norm.weight')) else others).append(miss)
    if not (max(gains) > 10 * REPLAY_BOUND and max(others) > 10 * REPLAY_BOUND):
        raise SystemExit(f'the q/k norm after RoPE moves the q/k gains\' gradients by at most {max(gains):.2e} and '
                         f'the others\' by {max(others):.2e} of their largest: the replay could not tell it from '
                         f'Qwen3 (make the gains differ more from 1)')


def write_fixture(name):
    cfg, batch, seq, seed = FIXTURES[name]
    out_dir = os.path.join(FIXTURES_DIR, name)
    torch.set_num_threads(1)
    torch.manual_seed(0)  # nothing here draws from torch's generator; set anyway
    rng = np.random.default_rng(seed)
    specs = parameter_specs(cfg)
    weights = {}
    for param_name, shape, kind in specs:
        noise = rng.standard_normal(shape)
        weights[param_name] = (1.0 + GAIN_STD * noise if kind == 'gain' else WEIGHT_STD * noise).astype(np.float16)
    tokens = rng.integers(0, cfg['vocab_size'], size=(batch, seq + 1)).astype('<u2')
    token_ids = torch.from_numpy(tokens.astype(np.int64))

    params = {n: torch.tensor(w.astype(np.float64), requires_grad=True) for n, w in weights.items()}
    loss = llama_loss(params, token_ids, cfg)
    loss.backward()

    expected = {}
    for param_name, _, _ in specs:
        grad = params[param_name].grad.numpy()
        stored = grad.astype(np.float16).astype(np.float64)
        largest = np.abs(grad).max()
        error = np.abs(stored - grad).max() / largest
        if not error <= F16_STORAGE_TOLERANCE:
            raise SystemExit(f'{param_name}: F16 storage moves the gradient by {error:.2e} of its largest magnitude '
                             f'(> {F16_STORAGE_TOLERANCE}); store it as F32')
        expected[param_name] = ('F16', grad)

    if has_qk_norm(cfg):  # checked before anything is written
        check_tells_qk_norm_apart(params, token_ids, cfg, expected)
        with torch.no_grad():
            control = llama_loss(params, token_ids, cfg, qk_norm=False)

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'config.json'), 'w') as f:
        f.write(json.dumps(cfg, indent=2) + '\n')
    write_safetensors(os.path.join(out_dir, 'weights.safetensors'),
                      {n: ('F16', w) for n, w in weights.items()}, {'format': 'pt'})
    with open(os.path.join(out_dir, 'tokens.bin'), 'wb') as f:
        f.write(tokens.tobytes())
    metadata = {
        'loss': repr(float(loss)),
        'batch': str(batch),
        'seq': str(seq),
        'generator': 'tools/refgen/llama_grads.py',
        'torch': torch.__version__,
        'numpy': np.__version__,
        'note': 'd loss / d parameter (loss scale 1) under Hugging Face names, computed in float64 from the '
                'F16 weights of weights.safetensors, stored as F16; loss: mean next-token cross-entropy '
                'over all batch x seq positions.',
    }
    if has_qk_norm(cfg):
        metadata['loss_without_qk_norm'] = repr(float(control))
        metadata['note'] += (' loss_without_qk_norm: the same weights and tokens with the q/k norms left out '
                             '(the control: a model that misses them).')
    write_safetensors(os.path.join(out_dir, 'expected.safetensors'), expected, metadata)
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f'wrote {os.path.relpath(out_dir)} ({size} bytes; loss {float(loss):.6f}, torch {torch.__version__})')


def main(argv):
    names = argv or list(FIXTURES)
    unknown = [n for n in names if n not in FIXTURES]
    if unknown:
        raise SystemExit(f'llama_grads.py: unknown fixture(s) {unknown}; expected some of {list(FIXTURES)}')
    for name in names:
        write_fixture(name)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
