#!/usr/bin/env python3
"""The llama2.c import fixture: a tiny model in llama2.c's own `.bin` format and PyTorch's loss of it,
computed the way llama2.c's model.py computes attention (interleaved RoPE), so a test can show that
ane-train's import (readLlama2cCheckpoint: the header, the tensor order, and the RoPE permutation from
llama2.c's interleaved pairs to Hugging Face's rotate-half halves) gives the same model.

The model (llama2.c's model.py, written out by hand; no llama2.c checkout needed), for each of the B
sequences of S + 1 tokens t[0..S]:

    x = tok_embeddings[t[0..S-1]]                                             [S, D]
    for each layer:
        h = x + wo(attention(rmsnorm(x; attention_norm)))
        x = h + w2(silu(w1(n)) * w3(n)),  n = rmsnorm(h; ffn_norm)
    logits = output(rmsnorm(x; norm))                                         [S, V]
    loss = mean over all B x S positions of CE(logits[s], t[s + 1])

    attention: q, k, v = wq(x), wk(x), wv(x), heads of head_dim = D / H (channel c = head * HD + d);
               RoPE INTERLEAVED (model.py's apply_rotary_emb): features (2i, 2i + 1) of a head are
               the real and imaginary parts of one complex number, rotated by p * theta^(-2i/HD);
               GQA: query head h reads KV head h // (H / KV) (model.py's repeat_kv);
               scores = q k^T / sqrt(HD), causal, softmax, probs v, heads merged, wo.

The .bin is llama2.c's legacy format (export.py's legacy_export, what stories15M.bin is): seven int32
(dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; vocab_size negative because the
classifier is NOT shared here), then float32 tensors: token embedding, every layer's attention norm,
wq, wk, wv, wo, ffn norm, w1, w2, w3 (each for all layers before the next), the final norm,
freq_cis_real and freq_cis_imag ([seq_len, HD/2] each), and the classifier.

Model: dim 32, hidden_dim 64, 2 layers, 4 heads (head_dim 8) over 2 KV heads, vocab 32, seq_len 16,
unshared classifier; batch 2 x seq 16. Weights fp16-representable (so a device computing in fp16
starts from exactly these values): wq and wk ~ N(0, 0.35^2) (large enough that attention, and so the
RoPE layout, moves the loss), the other matrices, embedding and classifier ~ N(0, 0.3^2), norm gains
1 + N(0, 0.1^2). PyTorch computes in float64.

expected.json records the loss and two controls: `loss_rope_not_permuted` (the same weights read as if
llama2.c used rotate-half, i.e. an import that forgets the permutation) and `loss_layers_swapped`; the
script refuses weights at which a control is within 20x the replay's tolerance (1e-3 relative) of
the loss.

Second use, `llama2c_fixture.py check-hf <dir>`: reads a Hugging Face export (config.json +
model.safetensors, with a hand-written safetensors reader: json + struct + numpy) and prints, as JSON,
the loss of this fixture's tokens under Hugging Face's Llama forward (llama_grads.py's llama_loss:
rotate-half RoPE). ane-train's convert tests run it when /usr/bin/python3 has torch.

Run from the repository root:  pnpm refgen llama2c   (or /usr/bin/python3 tools/refgen/llama2c_fixture.py)
Writes packages/ane-train/fixtures/convert/{stories-tiny.bin,tokens.bin,expected.json}.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_grads import llama_loss  # noqa: E402  (Hugging Face's Llama forward, rotate-half RoPE)

OUT_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'packages', 'ane-train', 'fixtures', 'convert')
DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, SEQ_LEN = 32, 64, 2, 4, 2, 32, 16
BATCH, SEQ = 2, 16
SEED = 20261214
NORM_EPS = 1e-5
THETA = 10000.0
TOLERANCE = 1e-3  # the replay's bound on the loss, relative


def draw_weights(rng):
    """llama2.c names, nn.Linear layout [out, in], fp16-representable float64."""
    hd = DIM // HEADS

    def normal(shape, std):
        return (std * rng.standard_normal(shape)).astype(np.float16).astype(np.float64)

    def gain(size):
        return (1.0 + 0.1 * rng.standard_normal(size)).astype(np.float16).astype(np.float64)

    w = {'tok_embeddings': normal((VOCAB, DIM), 0.3)}
    for layer in range(LAYERS):
        p = f'layers.{layer}'
        w[f'{p}.attention_norm'] = gain(DIM)
        w[f'{p}.wq'] = normal((HEADS * hd, DIM), 0.35)
        w[f'{p}.wk'] = normal((KV_HEADS * hd, DIM), 0.35)
        w[f'{p}.wv'] = normal((KV_HEADS * hd, DIM), 0.3)
        w[f'{p}.wo'] = normal((DIM, HEADS * hd), 0.3)
        w[f'{p}.ffn_norm'] = gain(DIM)
        w[f'{p}.w1'] = normal((HIDDEN, DIM), 0.3)
        w[f'{p}.w2'] = normal((DIM, HIDDEN), 0.3)
        w[f'{p}.w3'] = normal((HIDDEN, DIM), 0.3)
    w['norm'] = gain(DIM)
    w['output'] = normal((VOCAB, DIM), 0.3)
    return w


# ----- llama2.c's model.py, by hand -----------------------------------------------------------------

def rms_norm(x, gain):
    return gain * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS))


def freqs(seq, hd):
    """model.py's precompute_freqs_cis: cos, sin [S, HD/2]."""
    inv = 1.0 / (THETA ** (torch.arange(0, hd, 2, dtype=torch.float64)[: hd // 2] / hd))
    angles = torch.outer(torch.arange(seq, dtype=torch.float64), inv)
    return torch.cos(angles), torch.sin(angles)


def rope_interleaved(x, cos, sin):
    """model.py's apply_rotary_emb: x [B, S, H, HD]; pairs (2i, 2i+1) are (real, imaginary)."""
    real, imag = x.reshape(x.shape[:-1] + (-1, 2)).unbind(-1)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1).flatten(3)


def llama2c_loss(w, tokens):
    hd = DIM // HEADS
    n_rep = HEADS // KV_HEADS
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    b, seq = inputs.shape
    cos, sin = freqs(seq, hd)
    x = w['tok_embeddings'][inputs]                                            # [B, S, D]
    causal = torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1)
    for layer in range(LAYERS):
        p = f'layers.{layer}'
        n = rms_norm(x, w[f'{p}.attention_norm'])
        q = (n @ w[f'{p}.wq'].T).view(b, seq, HEADS, hd)
        k = (n @ w[f'{p}.wk'].T).view(b, seq, KV_HEADS, hd)
        v = (n @ w[f'{p}.wv'].T).view(b, seq, KV_HEADS, hd)
        q, k = rope_interleaved(q, cos, sin), rope_interleaved(k, cos, sin)
        # repeat_kv: [B, S, KV, HD] -> [B, S, KV * n_rep, HD]
        k = k[:, :, :, None, :].expand(b, seq, KV_HEADS, n_rep, hd).reshape(b, seq, HEADS, hd)
        v = v[:, :, :, None, :].expand(b, seq, KV_HEADS, n_rep, hd).reshape(b, seq, HEADS, hd)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)     # [B, H, S, HD]
        scores = (q @ k.transpose(2, 3)) / math.sqrt(hd)
        probs = torch.softmax(scores.masked_fill(causal, float('-inf')), dim=-1)
        context = (probs @ v).transpose(1, 2).reshape(b, seq, HEADS * hd)
        h = x + context @ w[f'{p}.wo'].T
        n = rms_norm(h, w[f'{p}.ffn_norm'])
        x = h + (torch.nn.functional.silu(n @ w[f'{p}.w1'].T) * (n @ w[f'{p}.w3'].T)) @ w[f'{p}.w2'].T
    logits = rms_norm(x, w['norm']) @ w['output'].T
    return float(torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1)))


# ----- the .bin, as export.py's legacy_export writes it ---------------------------------------------

def write_legacy_bin(path, w):
    hd = DIM // HEADS
    cos, sin = freqs(SEQ_LEN, hd)
    with open(path, 'wb') as f:
        f.write(struct.pack('<7i', DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, -VOCAB, SEQ_LEN))

        def put(array):
            f.write(np.ascontiguousarray(array, dtype='<f4').tobytes())

        put(w['tok_embeddings'])
        for name in ['attention_norm', 'wq', 'wk', 'wv', 'wo', 'ffn_norm', 'w1', 'w2', 'w3']:
            for layer in range(LAYERS):
                put(w[f'layers.{layer}.{name}'])
        put(w['norm'])
        put(cos.numpy())
        put(sin.numpy())
        put(w['output'])


def hf_config():
    return {'model_type': 'llama', 'hidden_size': DIM, 'intermediate_size': HIDDEN, 'num_hidden_layers': LAYERS,
            'num_attention_heads': HEADS, 'num_key_value_heads': KV_HEADS, 'head_dim': DIM // HEADS,
            'vocab_size': VOCAB, 'rms_norm_eps': NORM_EPS, 'rope_theta': THETA, 'tie_word_embeddings': False}


def as_hf_without_permutation(w):
    """The control: llama2.c's tensors under HF names as they are (wq/wk NOT permuted)."""
    p = {'model.embed_tokens.weight': w['tok_embeddings'], 'model.norm.weight': w['norm'],
         'lm_head.weight': w['output']}
    names = {'attention_norm': 'input_layernorm', 'wq': 'self_attn.q_proj', 'wk': 'self_attn.k_proj',
             'wv': 'self_attn.v_proj', 'wo': 'self_attn.o_proj', 'ffn_norm': 'post_attention_layernorm',
             'w1': 'mlp.gate_proj', 'w2': 'mlp.down_proj', 'w3': 'mlp.up_proj'}
    for layer in range(LAYERS):
        for ours, theirs in names.items():
            p[f'model.layers.{layer}.{theirs}.weight'] = w[f'layers.{layer}.{ours}']
    return {n: torch.from_numpy(np.asarray(t)) for n, t in p.items()}


def generate():
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    w = draw_weights(rng)
    tokens = rng.integers(0, VOCAB, size=(BATCH, SEQ + 1)).astype('<u2')
    token_ids = torch.from_numpy(tokens.astype(np.int64))
    tw = {n: torch.from_numpy(a) for n, a in w.items()}
    loss = llama2c_loss(tw, token_ids)

    hf = as_hf_without_permutation(w)
    not_permuted = float(llama_loss(hf, token_ids, hf_config()))
    # The script's own check of the permutation a correct import applies (transformers'
    # convert_llama_weights_to_hf.py `permute`, Meta's and llama2.c's interleaved layout -> HF's):
    # HF's forward on permuted wq/wk must be llama2.c's forward.
    for layer in range(LAYERS):
        for name, heads in [('q_proj', HEADS), ('k_proj', KV_HEADS)]:
            key = f'model.layers.{layer}.self_attn.{name}.weight'
            rows = hf[key].shape[0]
            hf[key] = hf[key].view(heads, rows // heads // 2, 2, DIM).transpose(1, 2).reshape(rows, DIM)
    permuted = float(llama_loss(hf, token_ids, hf_config()))
    if abs(permuted - loss) > 1e-12 * loss:
        raise SystemExit(f'HF forward of the permuted weights gives {permuted!r}, llama2.c forward {loss!r}')
    swapped = dict(tw)
    for name in ['attention_norm', 'wq', 'wk', 'wv', 'wo', 'ffn_norm', 'w1', 'w2', 'w3']:
        swapped[f'layers.0.{name}'], swapped[f'layers.1.{name}'] = tw[f'layers.1.{name}'], tw[f'layers.0.{name}']
    layers_swapped = llama2c_loss(swapped, token_ids)
    for label, control in [('rope not permuted', not_permuted), ('layers swapped', layers_swapped)]:
        if abs(control - loss) / loss < 20 * TOLERANCE:
            raise SystemExit(f'control "{label}" gives loss {control:.6f}, within 20x the tolerance of {loss:.6f}: '
                             'the fixture could not tell a wrong import; draw larger weights')

    os.makedirs(OUT_DIR, exist_ok=True)
    write_legacy_bin(os.path.join(OUT_DIR, 'stories-tiny.bin'), w)
    with open(os.path.join(OUT_DIR, 'tokens.bin'), 'wb') as f:
        f.write(tokens.tobytes())
    expected = {
        'generator': 'tools/refgen/llama2c_fixture.py',
        'torch': torch.__version__,
        'numpy': np.__version__,
        'note': "mean next-token cross-entropy of tokens.bin (batch x (seq + 1) little-endian uint16) under "
                "stories-tiny.bin, computed in float64 as llama2.c's model.py computes it (interleaved RoPE)",
        'batch': BATCH,
        'seq': SEQ,
        'loss': loss,
        'loss_rope_not_permuted': not_permuted,
        'loss_layers_swapped': layers_swapped,
        'config': {'dim': DIM, 'hidden_dim': HIDDEN, 'n_layers': LAYERS, 'n_heads': HEADS, 'n_kv_heads': KV_HEADS,
                   'vocab_size': VOCAB, 'seq_len': SEQ_LEN, 'shared_classifier': False},
    }
    with open(os.path.join(OUT_DIR, 'expected.json'), 'w') as f:
        f.write(json.dumps(expected, indent=2) + '\n')
    size = sum(os.path.getsize(os.path.join(OUT_DIR, n)) for n in os.listdir(OUT_DIR))
    print(f'wrote {os.path.relpath(OUT_DIR)} ({size} bytes; loss {loss:.6f}, controls: not permuted '
          f'{not_permuted:.6f}, layers swapped {layers_swapped:.6f})')


# ----- check-hf: a Hugging Face export, read without transformers ----------------------------------

def read_safetensors(path):
    """{name: float64 tensor}; F32, F16 and BF16."""
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    header.pop('__metadata__', None)
    out = {}
    for name, entry in header.items():
        begin, end = entry['data_offsets']
        raw = data[8 + n + begin:8 + n + end]
        if entry['dtype'] == 'F32':
            array = np.frombuffer(raw, dtype='<f4')
        elif entry['dtype'] == 'F16':
            array = np.frombuffer(raw, dtype='<f2')
        elif entry['dtype'] == 'BF16':
            array = (np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f'{path}: tensor {name} has dtype {entry["dtype"]}')
        out[name] = torch.from_numpy(array.astype(np.float64).reshape(entry['shape']))
    return out


def check_hf(directory):
    with open(os.path.join(directory, 'config.json')) as f:
        cfg = json.load(f)
    params = read_safetensors(os.path.join(directory, 'model.safetensors'))
    cfg.setdefault('head_dim', cfg['hidden_size'] // cfg['num_attention_heads'])
    cfg.setdefault('num_key_value_heads', cfg['num_attention_heads'])
    if cfg['tie_word_embeddings'] and 'lm_head.weight' in params:
        raise SystemExit('tied model exports lm_head.weight (Hugging Face omits it)')
    with open(os.path.join(OUT_DIR, 'expected.json')) as f:
        expected = json.load(f)
    with open(os.path.join(OUT_DIR, 'tokens.bin'), 'rb') as f:
        tokens = np.frombuffer(f.read(), dtype='<u2').astype(np.int64).reshape(expected['batch'], expected['seq'] + 1)
    loss = float(llama_loss(params, torch.from_numpy(tokens), cfg))
    print(json.dumps({'loss': loss, 'tensors': sorted(params), 'config': cfg}))


if __name__ == '__main__':
    if len(sys.argv) >= 2 and sys.argv[1] == 'check-hf':
        check_hf(sys.argv[2])
    else:
        generate()
