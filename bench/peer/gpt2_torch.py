"""GPT-2 in PyTorch exactly as shardlab defines it (include/shardlab/model.h, ref/gpt2.h), and
the safetensors I/O the peer scripts need (no dependency beyond torch).

Architecture: pre-LN blocks (x += attn(ln_1(x)); x += mlp(ln_2(x))), LayerNorm eps 1e-5,
GELU with the tanh approximation, learned positions, LM head tied to wte, causal attention
scaled by 1/sqrt(C/H). Parameters carry Hugging Face GPT-2 names and Conv1D layout (in, out):
out = x @ W + b. Init as Hugging Face's GPT2Model._init_weights: N(0, 0.02) weights, zero biases,
LayerNorm (1, 0), c_proj weights N(0, 0.02 / sqrt(2L)).
"""

import json
import math
import os
import struct

import torch
import torch.nn.functional as F

# Named sizes of include/shardlab/model.h: (n_layer, n_embd, n_head, block_size, vocab_size).
SIZES = {
    "gpt-tiny": (2, 64, 4, 64, 256),
    "gpt-small": (6, 384, 6, 256, 256),
    "gpt2-124m": (12, 768, 12, 1024, 50257),
}


def param_shapes(L, C, T, V):
    """(name, shape, init std or 'zeros'/'ones') in the model description's order."""
    proj_std = 0.02 / math.sqrt(2.0 * L)
    out = [("transformer.wte.weight", (V, C), 0.02), ("transformer.wpe.weight", (T, C), 0.02)]
    for layer in range(L):
        p = "transformer.h.%d." % layer
        out += [
            (p + "ln_1.weight", (C,), "ones"),
            (p + "ln_1.bias", (C,), "zeros"),
            (p + "attn.c_attn.weight", (C, 3 * C), 0.02),
            (p + "attn.c_attn.bias", (3 * C,), "zeros"),
            (p + "attn.c_proj.weight", (C, C), proj_std),
            (p + "attn.c_proj.bias", (C,), "zeros"),
            (p + "ln_2.weight", (C,), "ones"),
            (p + "ln_2.bias", (C,), "zeros"),
            (p + "mlp.c_fc.weight", (C, 4 * C), 0.02),
            (p + "mlp.c_fc.bias", (4 * C,), "zeros"),
            (p + "mlp.c_proj.weight", (4 * C, C), proj_std),
            (p + "mlp.c_proj.bias", (C,), "zeros"),
        ]
    out += [("transformer.ln_f.weight", (C,), "ones"), ("transformer.ln_f.bias", (C,), "zeros")]
    return out


class GPT2(torch.nn.Module):
    def __init__(self, n_layer, n_embd, n_head, block_size, vocab_size, seed=1234):
        super().__init__()
        self.L, self.C, self.H, self.T, self.V = n_layer, n_embd, n_head, block_size, vocab_size
        gen = torch.Generator().manual_seed(seed)
        self.names = []
        self.params = torch.nn.ParameterList()
        for name, shape, init in param_shapes(self.L, self.C, self.T, self.V):
            if init == "ones":
                t = torch.ones(shape)
            elif init == "zeros":
                t = torch.zeros(shape)
            else:
                t = torch.randn(shape, generator=gen) * init
            self.names.append(name)
            self.params.append(torch.nn.Parameter(t))
        self.index = {n: i for i, n in enumerate(self.names)}

    def p(self, name):
        return self.params[self.index[name]]

    def load(self, tensors):
        """Copies {name: tensor} into the parameters; every name must be present, shapes equal."""
        with torch.no_grad():
            for name in self.names:
                if name not in tensors:
                    raise ValueError("parameter %s is missing from the file" % name)
                src = tensors[name]
                dst = self.p(name)
                if tuple(src.shape) != tuple(dst.shape):
                    raise ValueError(
                        "parameter %s: shape %s in the file, %s expected"
                        % (name, tuple(src.shape), tuple(dst.shape))
                    )
                dst.copy_(src.float())

    def forward(self, idx):
        """idx (B, T) int64 -> logits (B, T, V)."""
        B, T = idx.shape
        C, H = self.C, self.H
        x = self.p("transformer.wte.weight")[idx] + self.p("transformer.wpe.weight")[:T]
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        for layer in range(self.L):
            p = "transformer.h.%d." % layer
            h = F.layer_norm(x, (C,), self.p(p + "ln_1.weight"), self.p(p + "ln_1.bias"), 1e-5)
            qkv = h @ self.p(p + "attn.c_attn.weight") + self.p(p + "attn.c_attn.bias")
            q, k, v = qkv.split(C, dim=2)
            q = q.view(B, T, H, C // H).transpose(1, 2)
            k = k.view(B, T, H, C // H).transpose(1, 2)
            v = v.view(B, T, H, C // H).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = (att @ v).transpose(1, 2).reshape(B, T, C)
            x = x + y @ self.p(p + "attn.c_proj.weight") + self.p(p + "attn.c_proj.bias")
            h = F.layer_norm(x, (C,), self.p(p + "ln_2.weight"), self.p(p + "ln_2.bias"), 1e-5)
            h = F.gelu(h @ self.p(p + "mlp.c_fc.weight") + self.p(p + "mlp.c_fc.bias"),
                       approximate="tanh")
            x = x + h @ self.p(p + "mlp.c_proj.weight") + self.p(p + "mlp.c_proj.bias")
        x = F.layer_norm(x, (C,), self.p("transformer.ln_f.weight"),
                         self.p("transformer.ln_f.bias"), 1e-5)
        return x @ self.p("transformer.wte.weight").t()


def loss_sum(logits, targets):
    """Σ of the token losses (targets < 0 are padding: no loss) and the number of targets."""
    V = logits.shape[-1]
    t = targets.reshape(-1).long()
    s = F.cross_entropy(logits.reshape(-1, V).float(), t, ignore_index=-1, reduction="sum")
    return s, int((t >= 0).sum())


# ---- safetensors (https://github.com/huggingface/safetensors: u64 header length, JSON header,
# little-endian data) ----

_DTYPES = {"F32": (torch.float32, 4), "I32": (torch.int32, 4), "BF16": (torch.bfloat16, 2),
           "F16": (torch.float16, 2), "F64": (torch.float64, 8), "I64": (torch.int64, 8)}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: %d bytes, too short for a safetensors file" % (path, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("%s: header of %d bytes runs past the end of the file" % (path, n))
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise ValueError("%s: tensor %s has dtype %s, which this reader does not know"
                             % (path, name, info["dtype"]))
        dtype, size = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        numel = math.prod(info["shape"])
        if end - begin != numel * size or end > len(body):
            raise ValueError("%s: tensor %s: data_offsets [%d, %d) do not hold shape %s"
                             % (path, name, begin, end, info["shape"]))
        raw = bytearray(body[begin:end])
        t = torch.frombuffer(raw, dtype=dtype) if numel else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: float32 tensor}, written F32 in the given order."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        b = t.detach().contiguous().float().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)
