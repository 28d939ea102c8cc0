#!/usr/bin/env python3
"""The reference classifier trained in PyTorch, for side-by-side throughput with
`cargo bench -p experiment --bench throughput`.

Same data and work as the Rust bench: the training split of a `label<TAB>text` folder, the same
tokeniser and vocabulary (ids sorted by count, then word), batches drawn as --batching says (file
order; shuffled; or length-bucketed, the experiment's default: shuffle, sort pools of 50 batches by
length, cut, shuffle the batches, anew each epoch, as `dataset::batch_indices`) and padded to
their longest text (at most --max-len tokens; --pad ladder rounds up as GPU backends do), embedding -> sinusoidal positions -> dropout ->
multi-head self-attention (no biases, padding masked; written out, or with --sdpa through
`F.scaled_dot_product_attention`, PyTorch's fused kernel with its own backward) -> residual + LayerNorm -> masked mean ->
dropout -> linear, cross-entropy, AdamW (lr 1e-3, eps 1e-5, no weight decay), one `loss.item()`
per batch. Prints one JSON line.

    python3 benches/pytorch_reference.py --dataset ../shared/datasets/sst2 --threads 1
    python3 benches/pytorch_reference.py --dataset ../shared/datasets/sst2 --threads 1 --sdpa
    python3 benches/pytorch_reference.py --dataset ... --device cuda

With --encoder DIR (a BERT checkpoint: config.json, model.safetensors, tokenizer.json, as
`experiment fetch minilm-l6` leaves it) the model is instead HF transformers' `BertModel` on
those weights (attention written out, or with --sdpa transformers' SDPA implementation), the
mean over real tokens, dropout, linear; ids from the checkpoint's tokenizer (transformers'
`BertTokenizerFast`, cut at --max-len); AdamW with --lr and --weight-decay: the fine-tuning that
`experiment train --config experiments/minilm-finetune.toml` runs (`benches/finetune.sh`).
"""

import argparse
import json
import math
import random
import resource
import time
from collections import Counter
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


def tokenize(text):
    # Mirrors dataset::tokenize: runs of letters, digits and apostrophes are words; every other
    # non-space character is a token of its own; lower case.
    tokens, word = [], []
    for c in text:
        if c.isalnum() or c == "'":
            word.append(c.lower())
            continue
        if word:
            tokens.append("".join(word))
            word = []
        if not c.isspace():
            tokens.append(c.lower())
    if word:
        tokens.append("".join(word))
    return tokens


def load_split(path):
    examples = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        label, text = line.split("\t", 1)
        examples.append((int(label), text))
    return examples


def build_vocab(texts, max_size=30000):
    counts = Counter(t for text in texts for t in tokenize(text))
    words = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max_size - 2]
    return {w: i + 2 for i, (w, _) in enumerate(words)}  # 0 = <pad>, 1 = <unk>


def sinusoids(max_len, d_model, base=10000.0):
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(base) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)
    return table


class Classifier(nn.Module):
    def __init__(self, vocab_size, n_classes, d_model=64, heads=4, dropout=0.1, max_len=512, sdpa=False):
        super().__init__()
        self.sdpa = sdpa
        self.heads, self.d_k = heads, d_model // heads
        self.embedding = nn.Embedding(vocab_size, d_model)  # N(0, 1), as burn's default
        self.register_buffer("positions", sinusoids(max_len, d_model))
        self.w_qs = nn.Linear(d_model, d_model, bias=False)
        self.w_ks = nn.Linear(d_model, d_model, bias=False)
        self.w_vs = nn.Linear(d_model, d_model, bias=False)
        self.fc = nn.Linear(d_model, d_model, bias=False)
        self.norm = nn.LayerNorm(d_model, eps=1e-5)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(d_model, n_classes)

    def forward(self, tokens, padding):
        b, l = tokens.shape
        x = self.dropout(self.embedding(tokens) + self.positions[:l])
        split = lambda t: t.view(b, l, self.heads, self.d_k).transpose(1, 2)
        q, k, v = split(self.w_qs(x)), split(self.w_ks(x)), split(self.w_vs(x))
        if self.sdpa:
            # A boolean mask is "may attend"; the scale defaults to 1/sqrt(d_k).
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=~padding[:, None, None, :])
        else:
            scores = (q / math.sqrt(self.d_k)) @ k.transpose(2, 3)
            scores = scores.masked_fill(padding[:, None, None, :], torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=-1)
            context = weights @ v
        context = context.transpose(1, 2).reshape(b, l, -1)
        hidden = self.norm(x + self.fc(context))
        keep = (~padding).float()[:, :, None]
        pooled = (hidden * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return self.output(self.dropout(pooled))


class PretrainedClassifier(nn.Module):
    """BertModel, mean over the real tokens, dropout, linear (the experiment's `--pooling mean`)."""

    def __init__(self, encoder_dir, n_classes, dropout=0.1, sdpa=False):
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel.from_pretrained(
            encoder_dir, add_pooling_layer=False, attn_implementation="sdpa" if sdpa else "eager"
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(self.bert.config.hidden_size, n_classes)

    def forward(self, tokens, padding):
        hidden = self.bert(input_ids=tokens, attention_mask=(~padding).long()).last_hidden_state
        keep = (~padding).float()[:, :, None]
        pooled = (hidden * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return self.output(self.dropout(pooled))


POOL_BATCHES = 50  # dataset::POOL_BATCHES


def batch_indices(lengths, batch_size, batching, rng):
    """One epoch's batches of indices, as dataset::batch_indices (Python's own RNG)."""
    order = list(range(len(lengths)))
    if batching == "file":
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    if batching == "shuffle":
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    out = []
    pool = batch_size * POOL_BATCHES
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])  # stable
        out.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(out)
    return out


def pad_ladder(max_len):
    """dataset::pad_ladder: 8, 12, 16, 24, 32, 48, ... up to max_len."""
    ladder, power = [], 8
    while power < max_len:
        ladder.append(power)
        if power + power // 2 < max_len:
            ladder.append(power + power // 2)
        power *= 2
    return [l for l in ladder if l < max_len] + [max_len]


def batches(encoded, batch_size, max_len, batching, pad, rng):
    # Padding is in the measured loop, as the Rust bench's batcher is; tokenising is not.
    ladder = pad_ladder(max_len)
    for indices in batch_indices([len(i) for _, i in encoded], batch_size, batching, rng):
        chunk = [encoded[i] for i in indices]
        ids = [i[:max_len] for _, i in chunk]
        length = max(1, max(len(i) for i in ids))
        if pad == "ladder":
            length = next(l for l in ladder if l >= length)
        tokens = torch.zeros(len(chunk), length, dtype=torch.long)
        for row, i in enumerate(ids):
            tokens[row, : len(i)] = torch.tensor(i, dtype=torch.long)
        labels = torch.tensor([label for label, _ in chunk], dtype=torch.long)
        yield tokens, tokens == 0, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help="folder holding train.tsv")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--batching", choices=["file", "shuffle", "bucket"], default="bucket")
    parser.add_argument("--pad", choices=["longest", "ladder"], default="longest")
    parser.add_argument("--sdpa", action="store_true",
                        help="attention through F.scaled_dot_product_attention (fused, own backward)")
    parser.add_argument("--stages", action="store_true",
                        help="also time forward, backward and optimiser step apart (CPU)")
    parser.add_argument("--json", help="write the result here too")
    parser.add_argument("--encoder", help="fine-tune this BERT checkpoint folder instead")
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-3, with --encoder 3e-5")
    parser.add_argument("--weight-decay", type=float, default=None, help="default: 0, with --encoder 0.01")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    device = torch.device(args.device)
    examples = load_split(Path(args.dataset) / "train.tsv")
    n_classes = max(label for label, _ in examples) + 1
    if args.encoder:
        from transformers import BertTokenizerFast

        tokenizer = BertTokenizerFast(tokenizer_file=str(Path(args.encoder) / "tokenizer.json"))
        ids = tokenizer([text for _, text in examples], truncation=True, max_length=args.max_len)["input_ids"]
        encoded = [(label, i) for (label, _), i in zip(examples, ids)]
        vocab = tokenizer.get_vocab()
        model = PretrainedClassifier(args.encoder, n_classes, sdpa=args.sdpa).to(device)
        lr, weight_decay = args.lr or 3e-5, 0.01 if args.weight_decay is None else args.weight_decay
    else:
        vocab = build_vocab(text for _, text in examples)
        model = Classifier(len(vocab) + 2, n_classes, args.d_model, args.heads, max_len=max(512, args.max_len), sdpa=args.sdpa).to(device)
        encoded = [(label, [vocab.get(t, 1) for t in tokenize(text)]) for label, text in examples]
        lr, weight_decay = args.lr or 1e-3, args.weight_decay or 0.0
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, eps=1e-5, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    rng = random.Random(42)
    model.train()
    samples = padded = 0
    stages = [0.0, 0.0, 0.0]  # forward, backward, optimiser step
    stream = iter(())
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
        try:
            tokens, padding, labels = next(stream)
        except StopIteration:
            stream = batches(encoded, args.batch_size, args.max_len, args.batching, args.pad, rng)
            tokens, padding, labels = next(stream)
        tokens, padding, labels = tokens.to(device), padding.to(device), labels.to(device)
        if step >= args.warmup:
            samples += tokens.shape[0]
            padded += tokens.shape[1]
        t0 = time.perf_counter()
        loss = loss_fn(model(tokens, padding), labels)
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        t3 = time.perf_counter()
        last_loss = loss.item()
        if step >= args.warmup:
            for i, (a, b) in enumerate([(t0, t1), (t1, t2), (t2, t3)]):
                stages[i] += b - a
    seconds = time.perf_counter() - started
    result = {
        "program": ("hf-bert" if args.encoder else "pytorch") + ("-sdpa" if args.sdpa else ""),
        "backend": args.device,
        "batching": args.batching,
        "pad": args.pad,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "warmup": args.warmup,
        "samples": samples,
        "seconds": seconds,
        "samples_per_s": samples / seconds,
        "mean_padded_len": padded / max(1, args.steps),
        "vocab": len(vocab) if args.encoder else len(vocab) + 2,
        "last_loss": last_loss,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    if args.stages:
        result["stages_s"] = dict(zip(("forward", "backward", "step"), stages))
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
