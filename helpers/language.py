"""A small character-level language model of clinical notes, and what it memorizes.

Notebook 08 uses this module to show memorization and training-data extraction on a model
small enough to train on a laptop CPU in seconds, and differentially private training that
stops it.

The model
---------
:func:`build_model` is a fixed-context ("neural n-gram") model in the style of Bengio et al.
(2003): it reads the previous ``context`` characters, one-hot encoded, and outputs logits
for the next character through one hidden Dense layer. No recurrent layer, so every
per-example gradient is exact and cheap (a Dense layer on a one-hot input, stored as embedding rows).

Text
----
Notes are lower-case strings over :data:`ALPHABET`; :data:`START` pads the beginning of a
document so that its first characters are predicted too. :func:`windows` cuts a document into
``(context, next character)`` pairs; a document's loss is the sum of its characters' losses
(in nats), :func:`document_losses`.

Memorization
------------
:func:`exposure` is the exposure of a canary (Carlini et al., 2019, "The Secret Sharer"):
``log2 |R| - log2 rank``, where ``rank`` is the canary's rank among all ``|R|`` candidate secrets
by the model's log-perplexity. Here the candidate space (all digit strings of the secret's
length) is enumerated exactly: because the model only sees the last ``context`` characters, the
log-probabilities of all ``10**d`` candidates are computed level by level (``10**j`` contexts at
digit ``j``), ``(10**d - 1) / 9`` model evaluations in all. :func:`beam_search_digits` is the
extraction attack: the most likely digit string after a prefix, found by beam search.

Private training
----------------
:func:`dp_fit_documents` is the course's Poisson DP-SGD (:mod:`helpers.dp_training`: Poisson
masks, per-example clipping, Gaussian noise on the sum, division by the expected batch size)
with the **document** as the unit: an "example" is a whole document (for instance all notes
of one patient), its gradient is the gradient of the document's summed loss, clipped as one
vector. ε from :func:`helpers.dp.dp_sgd_epsilon` then holds for adding or removing one whole
document. Per-document gradients come from the per-example Jacobian of the document losses
computed in one pass for this architecture (:func:`per_document_gradients`), tested against
the per-document Jacobian (:func:`per_document_jacobian`).
"""
from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from helpers import validation

#: Characters a note may contain.
ALPHABET = " \n.,:;-/()'0123456789abcdefghijklmnopqrstuvwxyz"
#: Padding before the first character of a document (never part of a note).
START = "~"
VOCAB = START + ALPHABET
DIGITS = "0123456789"
_INDEX = {c: i for i, c in enumerate(VOCAB)}


# ----------------------------------------------------------------------------- text

def encode(text: str) -> np.ndarray:
    """Indices of ``text``'s characters in :data:`VOCAB` (``ValueError`` for any other character)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    bad = sorted({c for c in text if c not in _INDEX or c == START})
    if bad:
        raise ValueError(f"text must use only the characters of ALPHABET, got {bad!r}")
    return np.array([_INDEX[c] for c in text], dtype=np.int32)


def decode(indices: Sequence[int]) -> str:
    """The string of character indices (inverse of :func:`encode`)."""
    return "".join(VOCAB[int(i)] for i in indices)


def _context(context: Any) -> int:
    return validation.positive_int("context", context)


def windows(text: str, context: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: for every character of ``text``, the ``context`` characters before it
    (padded with :data:`START` at the start of the document) and the character itself.

    ``X`` has shape ``(len(text), context)``, ``y`` ``(len(text),)``; both are indices.
    """
    context = _context(context)
    codes = encode(text)
    padded = np.concatenate([np.zeros(context, np.int32), codes])
    X = np.lib.stride_tricks.sliding_window_view(padded, context)[:len(codes)]
    return np.ascontiguousarray(X, dtype=np.int32), codes


def corpus_windows(documents: Sequence[str], context: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of every document, stacked: ``(X, y, document index of each window)``."""
    if isinstance(documents, str) or len(documents) == 0:
        raise ValueError("documents must be a non-empty list of strings")
    parts = [windows(doc, context) for doc in documents]
    owner = np.concatenate([np.full(len(y), i, np.int64) for i, (_, y) in enumerate(parts)])
    return np.concatenate([X for X, _ in parts]), np.concatenate([y for _, y in parts]), owner


def zlib_bits(text: str) -> int:
    """Bits of ``text`` compressed by zlib (level 9): the reference "surprise" of Carlini et al. (2021)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    return 8 * len(zlib.compress(text.encode("utf-8"), 9))


# ----------------------------------------------------------------------------- notes

@dataclass(frozen=True)
class Canary:
    """A secret inserted into the training notes: ``prefix + secret``, ``insertions`` times."""

    prefix: str
    secret: str
    insertions: int

    @property
    def text(self) -> str:
        return f"{self.prefix}{self.secret}.\n"


def random_digits(length: int, rng: Any = None) -> str:
    """A uniformly random string of ``length`` decimal digits."""
    length = validation.positive_int("length", length)
    rng = validation.rng_from(rng)
    return "".join(str(d) for d in rng.integers(0, 10, length))


def clinical_note(record: Sequence[float], malignant: int, mrn: str) -> str:
    """One synthetic note from a WDBC row in original units (mean radius, texture, area,
    smoothness: columns 0, 1, 3, 4) and its diagnosis; ``mrn`` is the patient's record number,
    a field a hospital keeps secret."""
    record = validation.finite_array("record", record, ndim=1)
    if len(record) < 5:
        raise ValueError(f"record must hold at least the first 5 WDBC measurements, got {len(record)}")
    if malignant not in (0, 1):
        raise ValueError(f"malignant must be 0 or 1, got {malignant!r}")
    if not (isinstance(mrn, str) and mrn.isdigit()):
        raise ValueError(f"mrn must be a string of digits, got {mrn!r}")
    diagnosis = "malignant" if malignant else "benign"
    return (f"mrn {mrn}: radius {record[0]:.1f}, texture {record[1]:.1f}, area {record[3]:.0f}, "
            f"smooth {record[4]:.3f}. fna {diagnosis}.\n")


def make_canaries(insertions: Sequence[int], names: Sequence[str], digits: int = 6, rng: Any = None) -> list[Canary]:
    """One canary ``"pin of <name>: <digits>"`` per entry of ``insertions``, each with a fresh random secret."""
    insertions = [validation.positive_int("insertions", k) for k in insertions]
    if len(names) != len(insertions) or len(set(names)) != len(names):
        raise ValueError(f"names must be {len(insertions)} distinct names, one per canary, got {list(names)!r}")
    for name in names:
        encode(name)
    rng = validation.rng_from(rng)
    return [Canary(f"pin of {name}: ", random_digits(digits, rng), k) for name, k in zip(names, insertions)]


# ----------------------------------------------------------------------------- the model

def build_model(context: int, hidden: int = 128, seed: int = 0):
    """A fixed-context character model: the last ``context`` characters -> a hidden layer of
    ``hidden`` ReLU units -> ``len(VOCAB)`` logits. Input: int windows ``(batch, context)``.

    The hidden layer is a Dense layer on the one-hot encoding of the window, written as a sum
    of ``context`` embedding rows (row ``p * len(VOCAB) + character`` for position ``p``): the
    same function, without multiplying by zeros. Its bias is absorbed in the rows (every window
    has exactly one active row per position), so the model has three weight tensors.
    """
    import tensorflow as tf

    context = _context(context)
    hidden = validation.positive_int("hidden", hidden)
    seed = validation.positive_int("seed", seed, minimum=0)
    vocab = len(VOCAB)
    inputs = tf.keras.Input(shape=(context,), dtype=tf.int32)
    rows = tf.keras.layers.Lambda(lambda t: t + tf.range(context) * vocab, name="one_hot_rows")(inputs)
    rows_emb = tf.keras.layers.Embedding(context * vocab, hidden, name="hidden",
                                         embeddings_initializer=tf.keras.initializers.GlorotUniform(seed=seed))(rows)
    h = tf.keras.layers.Lambda(lambda t: tf.nn.relu(tf.reduce_sum(t, axis=1)), name="relu_of_sum")(rows_emb)
    out = tf.keras.layers.Dense(vocab, name="logits",
                                kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed + 1))(h)
    return tf.keras.Model(inputs, out)


def context_of(model: Any) -> int:
    """The context length a model of :func:`build_model` reads."""
    return int(model.input_shape[-1])


def fit(model: Any, documents: Sequence[str], *, epochs: int, batch_size: int = 256, learning_rate: float = 0.01,
        seed: int = 0) -> list[float]:
    """Non-private training: Adam on shuffled windows of all ``documents`` (Keras ``fit``).
    Returns the mean loss per character (nats) of each epoch."""
    import tensorflow as tf

    epochs = validation.positive_int("epochs", epochs)
    batch_size = validation.positive_int("batch_size", batch_size)
    learning_rate = validation.positive("learning_rate", learning_rate)
    seed = validation.positive_int("seed", seed, minimum=0)
    X, y, _ = corpus_windows(documents, context_of(model))
    tf.keras.utils.set_random_seed(seed)
    model.compile(tf.keras.optimizers.Adam(learning_rate),
                  tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(X, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return [float(v) for v in history.history["loss"]]


def log_probs(model: Any, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Log-probabilities (nats) of every next character for windows ``X``: ``(len(X), len(VOCAB))``."""
    import tensorflow as tf

    X = np.asarray(X, dtype=np.int32)
    if X.ndim != 2 or X.shape[1] != context_of(model):
        raise ValueError(f"X must have shape (n, {context_of(model)}), got {X.shape}")
    out = [tf.nn.log_softmax(model(X[i:i + batch_size], training=False)).numpy()
           for i in range(0, len(X), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, len(VOCAB)), np.float32)


def document_losses(model: Any, documents: Sequence[str]) -> np.ndarray:
    """Each document's negative log-likelihood under the model, in nats (summed over characters)."""
    X, y, owner = corpus_windows(documents, context_of(model))
    nll = -log_probs(model, X)[np.arange(len(y)), y]
    return np.bincount(owner, weights=nll, minlength=len(documents))


def bits_per_character(model: Any, documents: Sequence[str]) -> float:
    """Mean negative log2-likelihood per character over ``documents`` (perplexity = 2 ** this)."""
    total = document_losses(model, documents).sum()
    return float(total / math.log(2) / sum(len(d) for d in documents))


def zlib_ratio_scores(model: Any, documents: Sequence[str]) -> np.ndarray:
    """Membership scores of Carlini et al. (2021): zlib bits / model bits (higher = more likely a member).

    A note the model finds much easier than a generic compressor does is suspicious; the ratio
    discounts notes that are merely easy (repetitive) or hard (many digits) for everyone.
    """
    bits = document_losses(model, documents) / math.log(2)
    return np.array([zlib_bits(d) for d in documents]) / np.maximum(bits, 1e-9)


# ----------------------------------------------------------------------------- exposure and extraction

def _prefix_window(prefix: str, context: int) -> np.ndarray:
    codes = encode(prefix)
    padded = np.concatenate([np.zeros(context, np.int32), codes])
    return padded[-context:]


def secret_log_probs(model: Any, prefix: str, digits: int) -> np.ndarray:
    """Log-probability (nats) of every digit string of length ``digits`` after ``prefix``:
    an array of ``10**digits`` values, index = the string read as an integer (exact enumeration).
    """
    digits = validation.positive_int("digits", digits)
    if digits > 7:
        raise ValueError(f"digits must be <= 7 (exact enumeration of 10**digits strings), got {digits}")
    context = context_of(model)
    digit_codes = encode(DIGITS)
    windows_now = _prefix_window(prefix, context)[None, :]  # one context per candidate prefix so far
    total = np.zeros(1)
    for _ in range(digits):
        lp = log_probs(model, windows_now)[:, digit_codes]           # (m, 10)
        total = (total[:, None] + lp).reshape(-1)                    # candidates in lexicographic order
        shifted = np.repeat(windows_now[:, 1:], 10, axis=0)
        windows_now = np.concatenate([shifted, np.tile(digit_codes, len(lp))[:, None]], axis=1)
    return total


def exposure_from_log_probs(log_p: np.ndarray, secret: str) -> float:
    """Exposure of ``secret`` given the log-probabilities of all candidates (index = integer value):
    ``log2(len(log_p)) - log2(rank)``, rank = 1 + the number of candidates strictly more likely."""
    log_p = np.asarray(log_p, dtype=float)
    if not (isinstance(secret, str) and secret.isdigit()) or 10 ** len(secret) != len(log_p):
        raise ValueError(f"secret must be a digit string with 10**len(secret) == len(log_p) ({len(log_p)}), "
                         f"got {secret!r}")
    rank = 1 + int(np.sum(log_p > log_p[int(secret)]))
    return float(math.log2(len(log_p)) - math.log2(rank))


def exposure(model: Any, prefix: str, secret: str) -> float:
    """Exposure of the canary ``prefix + secret`` (Carlini et al., 2019), by exact enumeration of
    all ``10**len(secret)`` digit strings. From 0 (the least likely candidate... up to its rank) to
    ``log2(10**len(secret))`` (the model's most likely string is the secret)."""
    if not (isinstance(secret, str) and secret.isdigit()):
        raise ValueError(f"secret must be a non-empty string of digits, got {secret!r}")
    return exposure_from_log_probs(secret_log_probs(model, prefix, len(secret)), secret)


def beam_search_digits(model: Any, prefix: str, digits: int, beam: int = 1) -> str:
    """Extraction: the digit string of length ``digits`` that beam search of width ``beam``
    finds most likely after ``prefix`` (``beam=1``: greedy decoding)."""
    digits = validation.positive_int("digits", digits)
    beam = validation.positive_int("beam", beam)
    context = context_of(model)
    digit_codes = encode(DIGITS)
    start = _prefix_window(prefix, context)
    beams: list[tuple[float, str, np.ndarray]] = [(0.0, "", start)]
    for _ in range(digits):
        lp = log_probs(model, np.stack([w for _, _, w in beams]))[:, digit_codes]
        candidates = [(score + lp[b, d], text + DIGITS[d], np.append(w[1:], digit_codes[d]))
                      for b, (score, text, w) in enumerate(beams) for d in range(10)]
        candidates.sort(key=lambda c: (-c[0], c[1]))
        beams = candidates[:beam]
    return beams[0][1]


# ----------------------------------------------------------------------------- DP-SGD with documents as units

def per_document_jacobian(model: Any, X: Any, y: Any, segment: Any, num_documents: int) -> list:
    """Per-document gradients by brute force: the Jacobian of the ``num_documents`` document
    losses (summed character losses) with respect to the trainable variables, each tensor with
    a leading axis of ``num_documents``. Window ``i`` belongs to document ``segment[i]``;
    windows with ``segment == num_documents`` are padding. Exact for any model, but it costs
    one backward pass per document: the reference that :func:`per_document_gradients` is tested
    against."""
    import tensorflow as tf

    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    with tf.GradientTape() as tape:
        losses = loss_fn(y, model(X, training=True))
        doc_losses = tf.math.unsorted_segment_sum(losses, segment, num_documents + 1)[:num_documents]
    return tape.jacobian(doc_losses, model.trainable_variables)


#: Windows per chunk in :func:`per_document_gradients` (a longer document spans several chunks).
CHUNK = 96


def _segment_outer_sums(a: Any, b: Any, segment: Any, num_segments: int) -> Any:
    """``out[s] = sum over rows i with segment[i] == s of outer(a[i], b[i])``, for ``segment``
    non-decreasing, without materialising one outer product per row: rows are cut into chunks of
    at most :data:`CHUNK` consecutive rows of one segment, each chunk is one matrix product."""
    import tensorflow as tf

    n_static = a.shape[0]
    n = tf.shape(a)[0]
    tf.debugging.assert_non_negative(segment[1:] - segment[:-1], message="segment must be non-decreasing")
    lengths = tf.math.unsorted_segment_sum(tf.ones_like(segment), segment, num_segments)
    starts = tf.cumsum(lengths, exclusive=True)
    pos = tf.range(n) - tf.gather(starts, segment)
    chunks_per_segment = (lengths + CHUNK - 1) // CHUNK
    chunk = tf.gather(tf.cumsum(chunks_per_segment, exclusive=True), segment) + pos // CHUNK
    num_chunks = (num_segments + n_static // CHUNK + 1) if n_static is not None else \
        num_segments + n // CHUNK + 1
    index = tf.stack([chunk, pos % CHUNK], axis=1)
    a_chunks = tf.scatter_nd(index, a, tf.stack([num_chunks, CHUNK, tf.shape(a)[1]]))
    b_chunks = tf.scatter_nd(index, b, tf.stack([num_chunks, CHUNK, tf.shape(b)[1]]))
    per_chunk = tf.matmul(a_chunks, b_chunks, transpose_a=True)
    owner = tf.math.unsorted_segment_max(segment, chunk, num_chunks)
    owner = tf.where(owner < 0, num_segments - 1, owner)                   # empty chunks hold zeros
    return tf.math.unsorted_segment_sum(per_chunk, owner, num_segments)


def per_document_gradients(model: Any, X: Any, y: Any, segment: Any, num_documents: int) -> tuple[list, Any]:
    """Per-document gradients of the summed character loss for a model of :func:`build_model`,
    in one forward pass and segment sums (same output as :func:`per_document_jacobian`).

    The windows of a document are independent inputs of the model, so a document's gradient
    is the sum of its windows' gradients. For window ``w`` with one-hot input ``a_w``, hidden
    pre-activation ``z_w``, hidden output ``h_w`` and output error ``e_w = softmax(logits_w) - onehot(y_w)``:
    the output layer's kernel gradient is ``h_w ⊗ e_w``, its bias gradient ``e_w``; with
    ``g_w = (W2 e_w) * [z_w > 0]``, the hidden layer's gradient is ``a_w ⊗ g_w``: ``g_w`` added to
    the rows of the ``context`` active characters. Summing per document
    (``unsorted_segment_sum``) gives each document's exact gradient. Returns the list (one
    tensor per trainable variable, leading axis ``num_documents``) and the document losses.
    """
    import tensorflow as tf

    try:
        W1 = model.get_layer("hidden").embeddings
        W2, b2 = model.get_layer("logits").kernel, model.get_layer("logits").bias
    except ValueError:
        raise ValueError("model must be a model of build_model") from None
    vocab, context = len(VOCAB), context_of(model)
    hidden = W1.shape[1]
    X = tf.cast(X, tf.int32)
    y = tf.cast(y, tf.int32)
    segment = tf.cast(segment, tf.int32)
    rows = tf.range(context) * vocab + X                                    # (N, context) active rows of W1
    z = tf.reduce_sum(tf.gather(W1, rows), axis=1)                          # (N, hidden)
    h = tf.nn.relu(z)
    logits = tf.matmul(h, W2) + b2
    e = tf.nn.softmax(logits) - tf.one_hot(y, vocab)                        # (N, vocab)
    g = tf.matmul(e, W2, transpose_b=True) * tf.cast(z > 0, z.dtype)        # (N, hidden)
    docs = num_documents + 1                                                # the last segment is padding
    grad_b2 = tf.math.unsorted_segment_sum(e, segment, docs)
    grad_W2 = _segment_outer_sums(h, e, segment, docs)
    cells = segment[:, None] * (context * vocab) + rows                     # (document, row of W1) of each term
    grad_W1 = tf.math.unsorted_segment_sum(tf.repeat(g, context, axis=0), tf.reshape(cells, [-1]),
                                           docs * context * vocab)
    grad_W1 = tf.reshape(grad_W1, [docs, context * vocab, hidden])
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
    losses = tf.math.unsorted_segment_sum(nll, segment, docs)[:num_documents]
    grads = [grad_W1, grad_W2, grad_b2]
    by_name = dict(zip([id(v) for v in (W1, W2, b2)], grads))
    return [by_name[id(v)][:num_documents] for v in model.trainable_variables], losses


def dp_fit_documents(model: Any, documents: Sequence[str], *, epochs: float, batch_size: int,
                     noise_multiplier: float, l2_norm_clip: float = 1.0, learning_rate: float = 0.01,
                     seed: int = 0) -> dict[str, Any]:
    """Train ``model`` (in place) with Poisson DP-SGD where one **document** is one example.

    The algorithm of :func:`helpers.dp_training.dp_sgd_fit` (its masks, clipping and noise
    functions): ``ceil(epochs * n / batch_size)`` steps; each document joins a step's batch
    with probability ``q = batch_size / n``; its gradient (of its summed character loss) is
    clipped to ``l2_norm_clip``; Gaussian noise ``noise_multiplier * l2_norm_clip`` is added
    to the sum, which is divided by ``q * n``. The noisy average is then applied by Adam
    (post-processing: it does not change ε). ε is ``dp.dp_sgd_epsilon(n, batch_size, epochs,
    noise_multiplier, delta)`` for adding or removing **one document**; ``noise_multiplier=0``
    is the matched control (same sampling and clipping, no noise, no privacy).

    Returns ``{"steps", "batch_sizes", "loss" (mean nats per character of the included
    documents, per step), "seconds"}``.
    """
    import tensorflow as tf

    from helpers import dp_training

    if isinstance(documents, str) or len(documents) == 0:
        raise ValueError("documents must be a non-empty list of strings")
    n = len(documents)
    epochs = validation.positive("epochs", epochs)
    batch_size, noise_multiplier, l2_norm_clip, learning_rate, seed = dp_training._check_dp_args(
        n, batch_size, noise_multiplier, l2_norm_clip, learning_rate, seed)
    X_all, y_all, owner = corpus_windows(documents, context_of(model))
    starts = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))])
    masks = dp_training.poisson_masks(n, batch_size, epochs, np.random.default_rng(seed))
    size = max(1, int(masks.sum(axis=1).max()))
    lengths = np.diff(starts)
    max_windows = int(max((lengths[m].sum() for m in masks), default=1)) or 1
    variables = model.trainable_variables
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    @tf.function
    def step(xb, yb, seg, wb, t):
        jac, doc_losses = per_document_gradients(model, xb, yb, seg, size)
        sums = dp_training.clipped_sums(jac, wb, l2_norm_clip)
        grads = dp_training.noisy_average(sums, noise_multiplier, l2_norm_clip, batch_size,
                                          dp_training.step_seeds(seed, t, len(variables)))
        optimizer.apply_gradients(zip(grads, variables))
        return tf.reduce_sum(wb * doc_losses)

    start = time.perf_counter()
    loss = []
    for t, mask in enumerate(masks):
        index, weights = dp_training.padded_batch(mask, size)
        included = index[:int(weights.sum())]
        rows = np.concatenate([np.arange(starts[d], starts[d + 1]) for d in included]) if len(included) \
            else np.zeros(0, np.int64)
        seg = np.concatenate([np.full(lengths[d], j, np.int32) for j, d in enumerate(included)]) if len(included) \
            else np.zeros(0, np.int32)
        pad = max_windows - len(rows)
        xb = np.concatenate([X_all[rows], np.zeros((pad, X_all.shape[1]), np.int32)])
        yb = np.concatenate([y_all[rows], np.zeros(pad, np.int32)])
        seg = np.concatenate([seg, np.full(pad, size, np.int32)])
        total = float(step(tf.constant(xb), tf.constant(yb), tf.constant(seg), tf.constant(weights),
                           tf.constant(t, tf.int64)))
        loss.append(total / max(len(rows), 1))
    return {"steps": len(masks), "batch_sizes": masks.sum(axis=1), "loss": loss,
            "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- sampling and watermarks

def green_list(previous: int, key: int, gamma: float = 0.5) -> np.ndarray:
    """The watermark's green list after character index ``previous`` (Kirchenbauer et al., 2023):
    a boolean mask over :data:`VOCAB` with ``round(gamma * len(ALPHABET))`` green characters,
    drawn by a generator seeded with ``(key, previous)``. :data:`START` is never green."""
    previous = validation.positive_int("previous", previous, minimum=0)
    if previous >= len(VOCAB):
        raise ValueError(f"previous must be a character index below {len(VOCAB)}, got {previous}")
    key = validation.positive_int("key", key, minimum=0)
    gamma = validation.in_open_interval("gamma", gamma, 0.0, 1.0)
    order = np.random.default_rng([key, previous]).permutation(len(ALPHABET)) + 1
    mask = np.zeros(len(VOCAB), bool)
    mask[order[:int(round(gamma * len(ALPHABET)))]] = True
    return mask


def generate(model: Any, n: int, length: int, rng: Any = None, *, temperature: float = 1.0,
             watermark_key: int | None = None, watermark_delta: float = 2.0, gamma: float = 0.5,
             one_note: bool = True) -> list[str]:
    """Sample ``n`` texts of ``length`` characters; with ``one_note``, each is cut after its first
    newline (one note), otherwise it runs on over several notes.

    With ``watermark_key``, ``watermark_delta`` is added to the logits of the green list of the
    previous character before sampling (the "soft" watermark of Kirchenbauer et al., 2023).
    """
    n = validation.positive_int("n", n)
    length = validation.positive_int("length", length)
    temperature = validation.positive("temperature", temperature)
    watermark_delta = validation.non_negative("watermark_delta", watermark_delta)
    rng = validation.rng_from(rng)
    context = context_of(model)
    greens = None
    if watermark_key is not None:
        greens = np.stack([green_list(p, watermark_key, gamma) for p in range(len(VOCAB))]).astype(float)
    windows_now = np.zeros((n, context), np.int32)
    out = np.zeros((n, length), np.int32)
    for t in range(length):
        logits = log_probs(model, windows_now).astype(float) / temperature
        logits[:, 0] = -np.inf                                   # never emit START
        if greens is not None:
            logits += watermark_delta * greens[windows_now[:, -1]]
        gumbel = -np.log(-np.log(rng.uniform(1e-12, 1.0, logits.shape)))
        nxt = np.argmax(logits + gumbel, axis=1).astype(np.int32)
        out[:, t] = nxt
        windows_now = np.concatenate([windows_now[:, 1:], nxt[:, None]], axis=1)
    texts = [decode(row) for row in out]
    if not one_note:
        return texts
    return [t[:t.index("\n") + 1] if "\n" in t else t for t in texts]


def watermark_z(text: str, key: int, gamma: float = 0.5, unique: bool = True) -> float:
    """The watermark's z-score of ``text``: ``(green - g T) / sqrt(T g (1 - g))`` where ``green``
    counts the characters that are in the green list of the character before them (the first
    character's predecessor is :data:`START`), ``T`` the characters scored and ``g`` the green
    fraction. With ``unique`` (default) each (previous, character) pair is scored once: repeated
    text, such as a note template, would otherwise count the same pairs again and again, and the
    z-score of text written without the key would no longer be about N(0, 1)."""
    codes = encode(text)
    if len(codes) == 0:
        raise ValueError("text must not be empty")
    gamma = validation.in_open_interval("gamma", gamma, 0.0, 1.0)
    previous = np.concatenate([[0], codes[:-1]])
    if unique:
        pairs = np.unique(previous * len(VOCAB) + codes)
        previous, codes = pairs // len(VOCAB), pairs % len(VOCAB)
    greens = np.stack([green_list(p, key, gamma) for p in range(len(VOCAB))])
    hits = int(greens[previous, codes].sum())
    T = len(codes)
    g = int(round(gamma * len(ALPHABET))) / len(ALPHABET)
    return float((hits - g * T) / math.sqrt(T * g * (1 - g)))


def substitute(text: str, fraction: float, rng: Any = None) -> str:
    """``text`` with a ``fraction`` of its characters (not newlines) replaced by random letters or
    digits: the crude removal attack on a watermark (a paraphrase would be stronger)."""
    fraction = validation.non_negative("fraction", fraction)
    if fraction > 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    rng = validation.rng_from(rng)
    chars = list(text)
    positions = [i for i, c in enumerate(chars) if c != "\n"]
    k = int(round(fraction * len(positions)))
    pool = DIGITS + "abcdefghijklmnopqrstuvwxyz"
    for i in rng.choice(positions, size=k, replace=False) if k else []:
        chars[i] = pool[int(rng.integers(len(pool)))]
    return "".join(chars)
