"""``model=ocr_llm``: Tesseract reads the image, a small GGUF LLM answers from its text.

The CPU stand-in for a VLM: it is prompt-sensitive in the same way (format, brevity,
which field), runs on 2 CPU cores (speeds: docs/benchmarks.md), and needs no GPU.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.model_store import ModelSpec, ModelStore, sha256_file
from models.ocr_llm_prompts import DOCUMENT_TEMPLATE, SYSTEM
from prompt_opt_api import AnswerModel, DerivedDataCache, Example, Prompt, TaskError, cache_key
from prompt_opt_api.demo_cut import DEMO_WINDOW, answer_window, demo_chars_problem

log = logging.getLogger(__name__)


AUTO_LANG = "auto"


class TesseractOcr:
    """Runs the ``tesseract`` binary on an image file.

    Args:
        lang: Tesseract languages, e.g. ``rus+eng``; ``auto`` must be resolved before use.
        psm: Page segmentation mode.
    """

    def __init__(self, lang: str = "rus+eng", psm: int = 6) -> None:
        self.lang = lang
        self.psm = psm
        self._version: str | None = None
        self._report: str | None = None  # full `tesseract --version`, read once
        self._tessdata: Path | None = None
        self._traineddata: dict[str, str] = {}  # language -> sha256 of its traineddata

    @property
    def version(self) -> str:
        if self._version is None:
            exe = shutil.which("tesseract")
            if exe is None:
                raise RuntimeError("tesseract is not installed: run scripts/setup.sh (apt-get install tesseract-ocr tesseract-ocr-rus)")
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
            self._version = (out.stdout or out.stderr).splitlines()[0].strip()
        return self._version

    def _require_languages(self) -> None:
        if self.lang == AUTO_LANG:
            raise TaskError("tesseract_lang=auto: the OCR languages are chosen from the task's train answers by "
                            "`python -m optimize` before the model is built; where the model is built otherwise, "
                            "name them (tesseract_lang=eng or rus+eng)")

    @property
    def identity(self) -> dict[str, Any]:
        """Everything about this OCR that changes its text: the full ``--version`` report
        (Tesseract and Leptonica), languages, psm, and the sha256 of each language's
        traineddata file (tessdata_fast and tessdata_best read differently)."""
        self._require_languages()
        if self._report is None:
            exe = shutil.which("tesseract")
            self.version  # noqa: B018 - fails early with a clear message if tesseract is missing
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
            # Tesseract and Leptonica versions and the SIMD paths (they change the LSTM's
            # arithmetic); not the image/compression/network libraries listed beside them.
            lines = [line.strip() for line in (out.stdout + out.stderr).splitlines() if line.strip()]
            kept = [ln.split(" : ")[0] if ln.startswith("leptonica") else ln for ln in lines
                    if ln.startswith(("tesseract", "leptonica")) or re.match(r"Found (AVX|SSE|FMA|NEON|OpenMP)", ln)]
            self._report = " | ".join(kept)
            listing = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, check=True)
            match = re.search(r'"([^"]+)"', listing.stdout + listing.stderr)
            self._tessdata = Path(match.group(1)) if match else None
        data = {}
        for lang in self.lang.split("+"):
            if lang not in self._traineddata:
                path = self._tessdata / f"{lang}.traineddata" if self._tessdata else None
                self._traineddata[lang] = sha256_file(path) if path and path.is_file() else "missing"
            data[lang] = self._traineddata[lang]
        return {"engine": "tesseract", "version": self._report, "lang": self.lang, "psm": self.psm,
                "traineddata_sha256": data}

    def read(self, image: Path) -> str:
        self._require_languages()
        self.version  # noqa: B018 - fails early with a clear message if tesseract is missing
        proc = subprocess.run(
            ["tesseract", str(image), "stdout", "-l", self.lang, "--psm", str(self.psm)],
            capture_output=True, text=True, env=dict(os.environ, OMP_THREAD_LIMIT="1"),
        )
        if proc.returncode != 0:
            raise RuntimeError(f"tesseract failed on {image}: {proc.stderr.strip()[-300:]}")
        return "\n".join(line for line in proc.stdout.splitlines() if line.strip())


def _slim_state_cache(capacity_bytes: int) -> Any:
    """llama-cpp's RAM prefix cache, minus the logits copy it keeps with every state.

    ``LlamaRAMCache`` stores ``scores`` (n_batch x vocab floats: ~300 MB for Qwen) with
    each entry while counting only the KV bytes against its capacity, which exhausts
    memory within a few dozen entries. Generation after a restored prefix always
    re-evaluates at least one token, so the stored logits are never read: a single zero
    row (broadcast on load) is enough.
    """
    import numpy as np
    from llama_cpp import LlamaRAMCache, LlamaState

    class SlimStateCache(LlamaRAMCache):
        def __setitem__(self, key, value):
            slim = LlamaState(
                input_ids=value.input_ids, scores=np.zeros((1, value.scores.shape[1]), dtype=np.single),
                n_tokens=value.n_tokens, llama_state=value.llama_state,
                llama_state_size=value.llama_state_size, seed=value.seed,
            )
            super().__setitem__(key, slim)

    return SlimStateCache(capacity_bytes=capacity_bytes)


class OcrLlmAnswerModel(AnswerModel):
    """Tesseract OCR + Qwen2.5-Coder-0.5B-Instruct (GGUF) through llama-cpp-python.

    Args:
        name: Display name for output files.
        weights: Pinned GGUF file.
        store_dir: Model store folder.
        tesseract_lang: OCR languages (``rus+eng``, ``eng``). The config's ``auto`` is chosen
            from the task's train answers by the entry point before the model is built
            (``optimize.ocr_language``); a model still holding ``auto`` refuses to read.
        tesseract_psm: OCR page segmentation mode.
        max_tokens: Answer length cap.
        n_ctx: Context window (a page of OCR text plus demos).
        n_threads: CPU threads (None: all available cores).
        ocr_max_chars: OCR text longer than this is cut (keeps the context bounded).
        demo_chars: Each demo's page text is cut to this many characters centred on its answer,
            widened to hold the whole answer with 20 characters each side (None: the whole page),
            for every prompt that does not set its own cut (``Prompt.demo_chars`` wins).
            Shorter demos are cheaper to read: each query with demos re-reads them.
        batch_size: Requests per evaluator call (llama.cpp runs them one by one).
        assumed_seconds_per_query: The run plan's guess before any query was measured.
        kv_cache_mb: RAM for cached prompt-prefix states (0 disables prefix reuse). Answers
            are the same either way on the 30 queries of tests/test_ocr_llm_real.py, but not
            always: on a near-tie the different evaluation split of a reused prefix can flip a
            greedy token (docs/benchmarks.md, few-shot cost). The store keeps the first answer
            computed, so runs on one store stay consistent; two fresh stores may differ there.

    Demos go before the page asked about as earlier chat turns, each with its page, so
    every query with demos re-reads its page after them. Two layouts that reuse the page
    prefix instead (the page first with demo excerpts after it; demos as "question ->
    answer" lines without their pages) answered worse with this 0.5B model and were
    removed (docs/benchmarks.md, few-shot cost).

    A request is fitted to ``n_ctx`` (by its tokens, plus an allowance for the chat
    template): when demos make it too long, the demos' page text is cut to a window
    around each demo's answer first, then demos are dropped from the last, then the
    page asked about is cut down to 200 characters; each is counted in ``diagnostics()``
    (the run summary) and warned about once. Only a prompt too long on its own can still
    overflow; llama.cpp then refuses it and that pair fails, the run goes on.
    """

    cuts_demo_text = True  # honours Prompt.demo_chars (prompt_opt_api.demo_cut)

    def __init__(
        self,
        name: str = "Qwen2.5-0.5B-OCR",
        weights: ModelSpec | None = None,
        store_dir: str = "~/.cache/vlm-prompt-opt/models",
        tesseract_lang: str = "rus+eng",
        tesseract_psm: int = 6,
        max_tokens: int = 32,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        ocr_max_chars: int = 6000,
        batch_size: int = 8,
        kv_cache_mb: int = 1024,
        demo_chars: int | None = None,
        assumed_seconds_per_query: float | None = None,
    ) -> None:
        if weights is None:
            raise ValueError("ocr_llm needs a weights spec (see conf/model/ocr_llm.yaml)")
        self.name = name
        self.weights = weights
        self.store_dir = store_dir
        self.ocr = TesseractOcr(tesseract_lang, tesseract_psm)
        self.max_tokens = max_tokens
        self.n_ctx = n_ctx
        self.n_threads = n_threads or len(os.sched_getaffinity(0))
        self.ocr_max_chars = ocr_max_chars
        if (problem := demo_chars_problem(demo_chars)) is not None:
            raise ValueError(f"ocr_llm: demo_chars {problem}")
        self.demo_chars = demo_chars
        self.assumed_seconds_per_query = assumed_seconds_per_query
        self._batch_size = batch_size
        self.kv_cache_bytes = kv_cache_mb << 20
        self.revision = weights.sha256
        self._llm: Any = None
        self._vocab: Any = None  # tokenizer only, for messages() before the weights are loaded
        self._cache: DerivedDataCache | None = None
        self._fit_counts = {"demo_pages_shortened": 0, "demos_dropped": 0, "pages_shortened": 0}
        self._fit_warned = False
        self._ocr_memo: dict[str, str] = {}
        self._lock = threading.Lock()
        self.llm_calls = 0

    @property
    def preferred_batch_size(self) -> int:
        return self._batch_size

    def use_cache(self, cache: DerivedDataCache) -> None:
        self._cache = cache

    def generation_params(self) -> dict[str, Any]:
        # n_threads and kv_cache_mb are left out on purpose: greedy decoding gives the same
        # text with any thread count and, but for rare near-ties (see kv_cache_mb), with or
        # without prefix reuse; keying on it would split the cache for no gain in rigour.
        return {
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
            "n_ctx": self.n_ctx,
            "ocr_max_chars": self.ocr_max_chars,
            "framing": cache_key({"system": SYSTEM, "template": DOCUMENT_TEMPLATE}),
            "context_fit": "answer-window/drop-last/v1",
            # named only when set: answers cached without it keep their keys
            **({"demo_chars": self.demo_chars, "demo_window": DEMO_WINDOW} if self.demo_chars else {}),
        }

    def cache_identity(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            **super().cache_identity(),
            "ocr": self.ocr.identity,
            "llama_cpp_python": version("llama-cpp-python"),
        }

    def diagnostics(self) -> dict[str, int]:
        return dict(self._fit_counts)

    def ocr_text(self, example: Example) -> str:
        """OCR text of the example's image, cached per image sha256 (memory and store)."""
        key = cache_key({"ocr": self.ocr.identity, "image_sha256": example.image_sha256})
        if key in self._ocr_memo:
            return self._ocr_memo[key]
        text = self._cache.get_blob(key) if self._cache else None
        if text is None:
            text = self.ocr.read(example.image)
            if self._cache:
                self._cache.put_blob(key, text)
        self._ocr_memo[key] = text
        return text

    def page_text(self, example: Example) -> str:
        """The page's text as the model reads it (retrieval by OCR text compares these)."""
        return self.ocr_text(example)[: self.ocr_max_chars]

    def _load(self) -> Any:
        if self._llm is None:
            from llama_cpp import Llama  # lazy: heavy native library

            path = ModelStore(self.store_dir).fetch(self.weights)
            self._llm = Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                              n_batch=128, seed=0, verbose=False)  # smaller logits buffer: cheaper state saves
            # Prompt candidates for one image share the [system + OCR text] prefix: keeping
            # KV states in RAM lets every later candidate skip re-reading the page.
            if self.kv_cache_bytes:
                self._llm.set_cache(_slim_state_cache(self.kv_cache_bytes))
        return self._llm

    def messages(self, prompt: Prompt, example: Example) -> list[dict[str, str]]:
        """The chat messages ``answer`` sends for one request: fitted to ``n_ctx`` with the model's
        tokenizer (its vocabulary alone is loaded when the weights are not)."""
        return self.build_messages(prompt, example, self._token_count(self._llm or self._vocabulary()))

    def _vocabulary(self) -> Any:
        """The GGUF's tokenizer without its weights (cheap): for requests built outside ``answer``."""
        if self._vocab is None:
            from llama_cpp import Llama  # lazy: heavy native library

            path = ModelStore(self.store_dir).fetch(self.weights)
            self._vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
        return self._vocab

    def build_messages(self, prompt: Prompt, example: Example, token_count: Any = None) -> list[dict[str, str]]:
        """Chat messages for one request: demos as earlier turns, then the question.

        Args:
            prompt: Candidate prompt (template and demos).
            example: The example asked about.
            token_count: ``token_count(text) -> int``; when given, the request is fitted
                to ``n_ctx`` (see the class docstring). The model passes its tokenizer.
        """
        demos = list(prompt.demos)
        cut = prompt.demo_chars or self.demo_chars  # the prompt's own cut wins over the model-wide one
        demo_limit = min(self.ocr_max_chars, cut or self.ocr_max_chars)
        page_limit = self.ocr_max_chars

        def build() -> list[dict[str, str]]:
            messages = [{"role": "system", "content": SYSTEM}]
            for demo in demos:
                text = self._excerpt(demo, demo_limit, centred=bool(cut))  # the demo's value stays on its page
                messages.append({"role": "user", "content": DOCUMENT_TEMPLATE.format(
                    ocr_text=text, instruction=prompt.render(demo))})
                messages.append({"role": "assistant", "content": demo.answer})
            messages.append({"role": "user", "content": self._user_turn(prompt, example, page_limit)})
            return messages

        messages = build()
        if token_count is None:
            return messages
        # Room for the answer and the chat template's own tokens (~6 per message).
        budget = self.n_ctx - self.max_tokens - 16

        def fits(msgs: list[dict[str, str]]) -> bool:
            return sum(token_count(m["content"]) + 6 for m in msgs) <= budget

        shortened = dropped = cut_page = False
        while not fits(messages):
            if demos and demo_limit > 400:
                demo_limit //= 2
                shortened = True
            elif demos:
                demos.pop()
                dropped = True
                self._fit_counts["demos_dropped"] += 1
            elif page_limit > 200:
                page_limit //= 2
                cut_page = True
            else:
                break  # cannot get smaller: llama.cpp reports the overflow
            messages = build()
        self._fit_counts["demo_pages_shortened"] += int(shortened)
        self._fit_counts["pages_shortened"] += int(cut_page)
        if shortened or dropped or cut_page:
            self._warn_fit_once(example)
        return messages

    def _excerpt(self, example: Example, limit: int, centred: bool) -> str:
        """At most ``limit`` characters of the example's page, around its answer when found.

        ``centred`` (a demo cut applies): the demo cut's window
        (``prompt_opt_api.demo_cut.answer_window``); else a page cut to fit ``n_ctx``, from half a
        window before the answer.
        """
        text = self.ocr_text(example)[: self.ocr_max_chars]
        if centred:
            return answer_window(text, example.answer, limit)
        if len(text) <= limit:
            return text
        found = re.search(re.escape(example.answer), text, re.IGNORECASE)
        if found is None:
            return text[:limit]
        start = max(0, min(found.start() - limit // 2, len(text) - limit))
        return text[start : start + limit]

    def _warn_fit_once(self, example: Example) -> None:
        if not self._fit_warned:
            self._fit_warned = True
            log.warning("%s: a request with demos exceeded n_ctx=%d (first: %s); demo page text is cut around "
                        "each demo's answer, then demos are dropped; counts go to run.json",
                        self.name, self.n_ctx, example.source_row)

    def _user_turn(self, prompt: Prompt, example: Example, limit: int) -> str:
        text = self.ocr_text(example)[: self.ocr_max_chars][:limit]
        return DOCUMENT_TEMPLATE.format(ocr_text=text, instruction=prompt.render(example))

    def _token_count(self, llm: Any) -> Any:
        def count(text: str) -> int:
            return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

        return count

    def answer(self, batch: Sequence[tuple[Prompt, Example]]) -> list[str]:
        llm = self._load()
        outputs = []
        with self._lock:
            for prompt, example in batch:
                result = llm.create_chat_completion(
                    messages=self.build_messages(prompt, example, self._token_count(llm)), temperature=0.0, top_k=1,
                    max_tokens=self.max_tokens, seed=0,
                )
                self.llm_calls += 1
                outputs.append((result["choices"][0]["message"].get("content") or "").strip())
        return outputs

    def close(self) -> None:
        for llm in (self._llm, self._vocab):
            if llm is not None:
                llm.close()
        self._llm = self._vocab = None
