#!/usr/bin/env python3
"""Builds the edgec model zoo: small generative models with random weights, exported to ONNX.

Nothing is downloaded: every model is built from a config with `torch.manual_seed` and random
weights. For each model and each torch exporter that works on it, this writes

    testsuite/zoo/<name>/model.onnx        (+ model.onnx.data for the dynamo export)
    testsuite/zoo/<name>/inputs.npz        arrays named after the ONNX graph inputs
    testsuite/zoo/<name>/ref.npz           ONNX Runtime (CPU EP) outputs, named after the graph outputs

and `testsuite/zoo/manifest.json` describing all of them. `<name>` is the TorchScript export
(`torch.onnx.export(..., dynamo=False)`, opset 17); `<name>_dynamo` is the torch.export-based one
(opset 18) with every initializer in external data. Each reference is checked against the torch
output of the same module on the same inputs before anything is kept.

`--large` instead writes the ~45M-parameter GPT-2 import-speed benchmark into testsuite/zoo/large/
(gitignored), with its own manifest there.

Files are written deterministically (fixed seeds, fixed zip timestamps, no absolute paths), so a
re-run with the same package versions rewrites identical bytes wherever the exporters themselves
are deterministic.
"""
import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import traceback
import warnings
import zipfile
import zlib

import numpy as np
import onnx
import onnx.external_data_helper
import onnx.numpy_helper
import onnxruntime as ort
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ZOO = os.path.normpath(os.path.join(HERE, "..", "zoo"))

TORCHSCRIPT_OPSET = 17
DYNAMO_OPSET = 18
# ORT-vs-torch acceptance: these are fp32 graphs with at most a few hundred thousand MACs per output,
# so anything beyond this means the export (or the reference) is wrong, not rounding.
RTOL, ATOL = 1e-3, 1e-4
EXTERNAL_MIN_BYTES = 128


# ----------------------------------------------------------------------------------------------
# Weight initialisation helpers


def randomize_norms(model, gen):
    """Gives every normalisation layer non-trivial affine parameters (and BatchNorm running stats).

    Freshly initialised norms have weight 1 and bias 0 (and BatchNorm mean 0 / var 1), which would
    let an importer that drops the scale, the shift or the statistics pass the reference check.
    """
    with torch.no_grad():
        for mod in model.modules():
            # By class name, to catch the libraries' own norms too (LlamaRMSNorm, ...).
            if "norm" not in type(mod).__name__.lower():
                continue
            w = getattr(mod, "weight", None)
            if isinstance(w, torch.Tensor):
                w.copy_(1.0 + 0.2 * torch.randn(w.shape, generator=gen))
            b = getattr(mod, "bias", None)
            if isinstance(b, torch.Tensor):
                b.copy_(0.2 * torch.randn(b.shape, generator=gen))
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.running_mean.copy_(0.3 * torch.randn(mod.running_mean.shape, generator=gen))
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=gen))


def input_rng(name):
    # Inputs are seeded per model (not from a shared stream) so adding a model changes no other file.
    return np.random.default_rng(zlib.crc32(name.encode()))


# ----------------------------------------------------------------------------------------------
# Models. Each builder returns (module, {input name: np.ndarray}, [output names], description).


class DcganGenerator(nn.Module):
    """DCGAN generator: latent [N, nz, 1, 1] -> image [N, 3, 32, 32] in (-1, 1)."""

    def __init__(self, nz=32, ngf=32):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),  # 1 -> 4
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),  # 4 -> 8
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),  # 8 -> 16
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False),  # 16 -> 32
            nn.Tanh(),
        )

    def forward(self, z):
        return self.net(z)


def build_dcgan():
    gen = torch.Generator().manual_seed(1)
    m = DcganGenerator()
    randomize_norms(m, gen)
    z = input_rng("dcgan").standard_normal((2, 32, 1, 1)).astype(np.float32)
    return m, {"z": z}, ["image"], "DCGAN generator (ConvTranspose2d+BatchNorm+ReLU, Tanh), nz=32 -> 3x32x32"


class VaeMlpDecoder(nn.Module):
    """MLP VAE decoder: latent [N, 16] -> pixel probabilities [N, 784] (28x28, flattened)."""

    def __init__(self, latent=16, hidden=(128, 256), out=784):
        super().__init__()
        self.fc1 = nn.Linear(latent, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], out)

    def forward(self, z):
        h = torch.relu(self.fc1(z))
        h = torch.relu(self.fc2(h))
        return torch.sigmoid(self.fc3(h))


def build_vae_mlp():
    m = VaeMlpDecoder()
    z = input_rng("vae_mlp").standard_normal((4, 16)).astype(np.float32)
    return m, {"z": z}, ["x"], "MLP VAE decoder (Linear/ReLU/Sigmoid), latent 16 -> 784"


class LogitsOnly(nn.Module):
    """Calls a transformers causal LM without KV cache and returns only the logits tensor."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids):
        # An explicit all-ones attention mask: without one, transformers probes the position ids for
        # packed sequences with `torch.diff`, which the TorchScript exporter cannot translate. With it,
        # the causal mask is built from constants and folded away by the exporters.
        mask = torch.ones_like(input_ids)
        return self.lm(input_ids=input_ids, attention_mask=mask, use_cache=False, return_dict=False)[0]


def gpt2_model(n_embd, n_layer, n_head, vocab, n_positions, init_range):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=vocab, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=init_range,
        bos_token_id=vocab - 1, eos_token_id=vocab - 1, use_cache=False, attn_implementation="eager",
    )
    return GPT2LMHeadModel(cfg)


def build_gpt2():
    # A larger init range than GPT-2's 0.02 keeps attention away from uniform and logits spread out,
    # so the reference actually exercises the softmax/attention numerics.
    lm = gpt2_model(64, 2, 4, 512, 64, init_range=0.1)
    randomize_norms(lm, torch.Generator().manual_seed(2))
    ids = input_rng("gpt2").integers(0, 512, (1, 16), dtype=np.int64)
    return (LogitsOnly(lm), {"input_ids": ids}, ["logits"],
            "GPT-2 decoder (transformers GPT2LMHeadModel): 2 layers, n_embd 64, 4 heads, vocab 512, "
            "n_positions 64, tied LM head; input_ids [1,16] -> logits")


def build_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        rms_norm_eps=1e-5, initializer_range=0.1, tie_word_embeddings=False, use_cache=False,
        attn_implementation="eager",
    )
    lm = LlamaForCausalLM(cfg)
    randomize_norms(lm, torch.Generator().manual_seed(3))
    ids = input_rng("llama").integers(0, 512, (1, 16), dtype=np.int64)
    return (LogitsOnly(lm), {"input_ids": ids}, ["logits"],
            "LLaMA decoder (transformers LlamaForCausalLM): hidden 64, 2 layers, 4 heads, 2 KV heads "
            "(GQA), SwiGLU 128, RMSNorm, RoPE, vocab 512; input_ids [1,16] -> logits")


class UnetStep(nn.Module):
    """One denoising step of a diffusers UNet2DModel: (noisy sample, timestep) -> predicted noise."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep):
        return self.unet(sample, timestep, return_dict=False)[0]


def build_unet():
    from diffusers import UNet2DModel

    unet = UNet2DModel(
        sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(32, 64), norm_num_groups=8,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=8,
    )
    randomize_norms(unet, torch.Generator().manual_seed(4))
    rng = input_rng("unet")
    sample = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    timestep = rng.integers(0, 1000, (1,), dtype=np.int64)
    return (UnetStep(unet), {"sample": sample, "timestep": timestep}, ["out_sample"],
            "diffusers UNet2DModel denoising step: 16x16x3, blocks (32, 64) with attention in the "
            "inner down/up block, GroupNorm(8), sinusoidal timestep embedding; int64 timestep [1]")


class VaeDecode(nn.Module):
    """The decoder half of a diffusers AutoencoderKL: latent -> image."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z).sample


def build_vae_decoder():
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        layers_per_block=1, norm_num_groups=8, sample_size=16,
    )
    randomize_norms(vae, torch.Generator().manual_seed(5))
    z = input_rng("vae_decoder").standard_normal((1, 4, 8, 8)).astype(np.float32)
    return (VaeDecode(vae), {"z": z}, ["image"],
            "diffusers AutoencoderKL decoder (post-quant conv, mid block with attention, 2 up blocks, "
            "GroupNorm(8), SiLU): latent 4x8x8 -> image 3x16x16")


class ResBlock1d(nn.Module):
    """HiFi-GAN style residual block: LeakyReLU -> dilated conv -> LeakyReLU -> conv, plus skip."""

    def __init__(self, ch, kernel=3, dilations=(1, 3)):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(ch, ch, kernel, dilation=d, padding=d * (kernel - 1) // 2) for d in dilations)
        self.convs2 = nn.ModuleList(
            nn.Conv1d(ch, ch, kernel, dilation=1, padding=(kernel - 1) // 2) for _ in dilations)

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            y = c2(nn.functional.leaky_relu(c1(nn.functional.leaky_relu(x, 0.1)), 0.1))
            x = x + y
        return x


class Vocoder(nn.Module):
    """HiFi-GAN-like vocoder: mel [N, 16, T] -> waveform [N, 1, 16 T] (two x4 upsampling stages)."""

    def __init__(self, mels=16, ch=64, rates=(4, 4)):
        super().__init__()
        self.conv_pre = nn.Conv1d(mels, ch, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        c = ch
        for r in rates:
            self.ups.append(nn.ConvTranspose1d(c, c // 2, 2 * r, stride=r, padding=r // 2))
            c //= 2
            # Two parallel residual blocks with different kernels, averaged (multi-receptive-field fusion).
            self.resblocks.append(nn.ModuleList([ResBlock1d(c, 3, (1, 3)), ResBlock1d(c, 5, (1, 2))]))
        self.conv_post = nn.Conv1d(c, 1, 7, padding=3)

    def forward(self, mel):
        x = self.conv_pre(mel)
        for up, blocks in zip(self.ups, self.resblocks):
            x = up(nn.functional.leaky_relu(x, 0.1))
            x = sum(b(x) for b in blocks) / len(blocks)
        x = nn.functional.leaky_relu(x, 0.01)
        return torch.tanh(self.conv_post(x))


def build_vocoder():
    m = Vocoder()
    mel = input_rng("vocoder").standard_normal((1, 16, 32)).astype(np.float32)
    return m, {"mel": mel}, ["waveform"], ("HiFi-GAN-like vocoder (Conv1d, ConvTranspose1d x4 x4, "
                                            "dilated residual blocks, LeakyReLU, Tanh): mel 16x32 -> 512 samples")


def build_gpt2_45m():
    lm = gpt2_model(512, 6, 8, 50257, 1024, init_range=0.02)
    ids = input_rng("gpt2_45m").integers(0, 50257, (1, 16), dtype=np.int64)
    return (LogitsOnly(lm), {"input_ids": ids}, ["logits"],
            "GPT-2 (transformers GPT2LMHeadModel): 6 layers, n_embd 512, 8 heads, vocab 50257, "
            "n_positions 1024, tied LM head (~45M parameters); import-speed benchmark")


# Small models are exported by both exporters (each variant kept when it works); the large benchmark
# is exported once, by the first exporter that works (dynamo, whose weights go to external data).
BOTH = (("torchscript", ""), ("dynamo", "_dynamo"))
FIRST_OK = (("dynamo", ""), ("torchscript", ""))

SMALL = {
    "dcgan": build_dcgan,
    "vae_mlp": build_vae_mlp,
    "gpt2": build_gpt2,
    "llama": build_llama,
    "unet": build_unet,
    "vae_decoder": build_vae_decoder,
    "vocoder": build_vocoder,
}
LARGE = {"gpt2_45m": build_gpt2_45m}


# ----------------------------------------------------------------------------------------------
# Export, reference and bookkeeping


def export_torchscript(module, args, in_names, out_names):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=TORCHSCRIPT_OPSET,
                          input_names=in_names, output_names=out_names, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def export_dynamo(module, args, in_names, out_names):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(module, args, dynamo=True, opset_version=DYNAMO_OPSET,
                                 input_names=in_names, output_names=out_names, external_data=True)
    model = prog.model_proto
    # The exporter annotates every node with the FX node, class hierarchy and a Python stack trace
    # (absolute paths of this machine). None of it is model semantics; dropping it keeps the files
    # small and reproducible across checkouts.
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    return model


def save_model(model, out_dir, external):
    path = os.path.join(out_dir, "model.onnx")
    if external:
        # Every initializer of at least EXTERNAL_MIN_BYTES goes to model.onnx.data (ONNX's default
        # threshold of 1 KiB would keep many biases and norm weights of these tiny models inline).
        # Smaller ones stay inline: they include shape, axes and Resize-scale constants, which ONNX
        # Runtime must read during its own shape inference, and that does not load external data.
        for t in model.graph.initializer:
            if not t.HasField("raw_data"):
                t.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t), t.name))
            if len(t.raw_data) >= EXTERNAL_MIN_BYTES:
                onnx.external_data_helper.set_external_data(t, "model.onnx.data")
    onnx.save(model, path)  # writes the tensors marked external to model.onnx.data, in graph order
    return path


def write_npz(path, arrays):
    """np.savez with a fixed zip timestamp (np.savez stamps the current time, so it never reproduces)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def run_ort(path, feeds):
    so = ort.SessionOptions()
    # No graph rewrites and one thread: the reference is the literal graph, evaluated reproducibly.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def value_info(vi):
    t = vi.type.tensor_type
    dims = []
    for d in t.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return {"name": vi.name, "shape": dims,
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name}


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def torch_outputs(module, inputs):
    with torch.no_grad():
        out = module(*[torch.from_numpy(a) for a in inputs.values()])
    if isinstance(out, torch.Tensor):
        out = (out,)
    return [o.detach().numpy() for o in out]


def make_variant(name, exporter, module, inputs, out_names, root, torch_out):
    """Exports one variant, checks it, writes its files and returns its manifest entry."""
    in_names = list(inputs)
    args = tuple(torch.from_numpy(a) for a in inputs.values())
    if exporter == "torchscript":
        model = export_torchscript(module, args, in_names, out_names)
    else:
        model = export_dynamo(module, args, in_names, out_names)
    out_dir = os.path.join(root, name)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    external = exporter == "dynamo"
    path = save_model(model, out_dir, external)
    onnx.checker.check_model(path)  # by path, so external data is resolved and checked as well

    model = onnx.load(path, load_external_data=False)
    graph_in = [value_info(v) for v in model.graph.input]
    graph_out = [value_info(v) for v in model.graph.output]
    if [v["name"] for v in graph_in] != in_names:
        raise RuntimeError(f"graph inputs {[v['name'] for v in graph_in]} != {in_names}")
    for v in graph_in:
        if any(not isinstance(d, int) for d in v["shape"]):
            raise RuntimeError(f"input {v['name']} has a non-static shape {v['shape']}")

    ref = run_ort(path, inputs)
    if list(ref) != [v["name"] for v in graph_out]:
        raise RuntimeError(f"ORT outputs {list(ref)} != graph outputs")
    if len(ref) != len(torch_out):
        raise RuntimeError(f"{len(ref)} ONNX outputs but torch gave {len(torch_out)}")
    max_diff = 0.0
    for (oname, got), want in zip(ref.items(), torch_out):
        if got.shape != want.shape or got.dtype != want.dtype:
            raise RuntimeError(f"output {oname}: ORT {got.dtype}{list(got.shape)} vs torch "
                               f"{want.dtype}{list(want.shape)}")
        max_diff = max(max_diff, float(np.max(np.abs(got.astype(np.float64) - want))))
        if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
            raise RuntimeError(f"output {oname}: ORT differs from torch by {max_diff:.3g}")
    for f in os.listdir(out_dir):
        os.chmod(os.path.join(out_dir, f), 0o644)  # onnx creates the data file 0600
    write_npz(os.path.join(out_dir, "inputs.npz"), inputs)
    write_npz(os.path.join(out_dir, "ref.npz"), ref)

    files = sorted(os.listdir(out_dir))
    model_files = [f for f in files if f.startswith("model.onnx")]
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {
        "exporter": exporter,
        "opset": opset,
        "ir_version": model.ir_version,
        "external_data": external,
        "file_size": sum(os.path.getsize(os.path.join(out_dir, f)) for f in model_files),
        "files": {f: file_sha256(os.path.join(out_dir, f)) for f in files},
        "nodes": len(model.graph.node),
        "op_types": sorted({n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                            for n in model.graph.node}),
        "inputs": graph_in,
        "outputs": graph_out,
        "max_abs_diff_vs_torch": max_diff,
    }


def build_all(builders, root, only, plan, first_ok):
    entries, exporters_by_model, rows = [], {}, []
    for base, builder in builders.items():
        if only and base not in only:
            continue
        torch.manual_seed(0)
        module, inputs, out_names, desc = builder()
        module.eval()
        params = sum(p.numel() for p in module.parameters())
        torch_out = torch_outputs(module, inputs)
        status = {}
        for exporter, suffix in plan:
            if first_ok and "ok" in status.values():
                break
            name = base + suffix
            print(f"[{name}] exporting ({exporter}) ...", flush=True)
            try:
                entry = make_variant(name, exporter, module, inputs, out_names, root, torch_out)
            except Exception as e:  # record and continue with the next exporter/model
                msg = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]
                status[exporter] = f"failed: {msg}"
                print(f"[{name}] FAILED: {msg}", flush=True)
                if os.environ.get("ZOO_TRACEBACK"):
                    traceback.print_exc()
                stale = os.path.join(root, name)
                if os.path.exists(stale):
                    shutil.rmtree(stale)
                rows.append((name, exporter, "-", params, "-", "-", "FAILED"))
                continue
            status[exporter] = "ok"
            entry = {"name": name, "base": base, "description": desc, "params": params, **entry}
            entries.append(entry)
            rows.append((name, exporter, entry["opset"], params, entry["file_size"],
                         f"{entry['max_abs_diff_vs_torch']:.2e}", "ok"))
        exporters_by_model[base] = status
        for e in entries:
            if e["base"] == base:
                e["exporters"] = status
    return entries, exporters_by_model, rows


def versions():
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "transformers", "diffusers", "onnxscript", "onnx", "onnxruntime", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def write_manifest(path, entries, exporters_by_model, only):
    manifest = {}
    if only and os.path.exists(path):
        # A partial run (--only) updates its models and keeps the other entries.
        with open(path) as f:
            manifest = json.load(f)
        keep = [e for e in manifest.get("models", []) if e["base"] not in exporters_by_model]
        entries = sorted(keep + entries, key=lambda e: e["name"])
        exporters_by_model = {**manifest.get("exporters", {}), **exporters_by_model}
    manifest = {
        "generator": "testsuite/scripts/gen_zoo.py",
        "reference": "onnxruntime CPUExecutionProvider, graph optimizations disabled, 1 thread",
        "ort_version": ort.__version__,
        "versions": versions(),
        "tolerance_vs_torch": {"rtol": RTOL, "atol": ATOL},
        "exporters": dict(sorted(exporters_by_model.items())),
        "models": sorted(entries, key=lambda e: e["name"]),
    }
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=False)
        f.write("\n")


def print_table(rows):
    head = ("model", "exporter", "opset", "params", "bytes", "max|ort-torch|", "status")
    table = [head] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true",
                    help="write the ~45M-parameter GPT-2 benchmark into zoo/large/ instead of the small zoo")
    ap.add_argument("--only", nargs="*", default=None, help="regenerate only these base models")
    ap.add_argument("--out", default=None, help="output directory (default: testsuite/zoo[/large])")
    args = ap.parse_args()

    torch.set_num_threads(1)
    builders = LARGE if args.large else SMALL
    root = args.out or (os.path.join(ZOO, "large") if args.large else ZOO)
    os.makedirs(root, exist_ok=True)
    only = set(args.only) if args.only else None
    if only and not only <= set(builders):
        ap.error(f"unknown model(s) {sorted(only - set(builders))}; known: {sorted(builders)}")

    plan = FIRST_OK if args.large else BOTH
    entries, exporters_by_model, rows = build_all(builders, root, only, plan, first_ok=args.large)
    if args.large:
        for e in entries:
            print(f"{e['name']}: {e['params']:,} parameters ({e['params'] / 1e6:.1f}M)")
    write_manifest(os.path.join(root, "manifest.json"), entries, exporters_by_model, only)
    print()
    print_table(rows)
    failed_models = [b for b, st in exporters_by_model.items() if all(v != "ok" for v in st.values())]
    if failed_models:
        print(f"no exporter worked for: {', '.join(failed_models)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
