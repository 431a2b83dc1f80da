"""Type stubs of the native module `dbl._native` (python/src/*.rs). Use the
package `dbl`, which re-exports Model and Index and wraps the functions."""

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, os.PathLike[str]]
_Progress = Optional[Callable[[dict], None]]
_F32 = npt.NDArray[np.float32]

__version__: str

class Model:
    """A trained matcher loaded for inference (dbl.load / dbl.load_weights)."""

    @property
    def backbone(self) -> str:
        """Backbone name: "scan-ave", "vse", "vse-infty", "sgr" or "saf"."""
    @property
    def embed_dim(self) -> int:
        """Joint embedding width d."""
    @property
    def img_dim(self) -> int:
        """Region feature width D the image encoder takes."""
    @property
    def vocab_size(self) -> int:
        """Rows of the word embedding (vocabulary words + appended tokens)."""
    @property
    def vocab_len(self) -> int:
        """Words of the vocabulary."""
    @property
    def run(self) -> Optional[Path]:
        """The run folder (None for a weights file)."""
    @property
    def branch(self) -> Optional[int]:
        """The branch loaded (None for a weights file)."""
    @property
    def tag(self) -> Optional[str]:
        """"best" or "last" (None for a weights file)."""
    @property
    def weights(self) -> Path:
        """The weights file loaded."""
    @property
    def weight_hash(self) -> str:
        """FNV-1a 64 hash of the weights file, as index manifests record it."""
    @property
    def threads(self) -> int:
        """Worker threads of this model's calls (0 = every core)."""
    @property
    def config(self) -> Dict[str, Any]:
        """The backbone configuration (sizes included)."""
    def tokenize(self, text: str) -> Tuple[List[int], List[str]]:
        """Token ids of `text` ([<start>, ..., <end>]) as the CLI tokenises
        it, and the words mapped to <unk>."""
    def encode_images(self, features: npt.ArrayLike, progress: _Progress = None) -> _F32:
        """Region features [N, R, D] -> image representations [N, rows, d]
        (rows = R, or 1 for pooled backbones), in the chunks `dbl score` uses."""
    def encode_captions(
        self, captions: List[str]
    ) -> Tuple[_F32, npt.NDArray[np.int64], List[List[str]]]:
        """Caption texts -> (rows [n_rows, d], offsets [n + 1], unknown words
        per caption); caption k is rows[offsets[k]:offsets[k + 1]]."""
    def score(
        self,
        features: npt.ArrayLike,
        captions: List[str],
        head_precision: str = "f32",
        progress: _Progress = None,
    ) -> _F32:
        """Images (region features [N, R, D]) x caption texts -> similarities
        [N, len(captions)]; head_precision "bf16" needs Intel AMX."""
    def score_split(
        self, split: str = "test", head_precision: str = "f32", progress: _Progress = None
    ) -> _F32:
        """Split "dev", "test" or "testall" of the run's dataset ->
        [n_images, n_captions], bit-identical to `dbl score` at the same threads."""
    def state_dict(self) -> Dict[str, _F32]:
        """Weights by their PyTorch names (tools/reference/dbl_ref), copies."""

class Index:
    """An index folder (dbl index build), searched as `dbl search` does."""

    @property
    def manifest(self) -> Dict[str, Any]:
        """The index's manifest: model, sizes, gallery counts."""
    @property
    def path(self) -> Path:
        """The index folder."""
    def search_text(self, text: str, k: int = 10, shortlist: int = 100) -> Dict[str, Any]:
        """Text -> images: {"hits": [{"id", "row", "score"}], "candidates",
        "unknown_words"?}, best first."""
    def search_image(
        self,
        features: Optional[npt.ArrayLike] = None,
        *,
        row: Optional[int] = None,
        k: int = 10,
        shortlist: int = 100,
    ) -> Dict[str, Any]:
        """Image (region features [R, D], or gallery row `row`) -> captions:
        {"hits": [{"id", "row", "score", "caption"}], "candidates"}."""

def load(
    run: _Path, branch: Optional[int] = None, tag: str = "best", threads: Optional[int] = None
) -> Model: ...
def load_weights(
    weights: _Path, vocab: _Path, model: Dict[str, Any], threads: int = 0
) -> Model: ...
def open_index(path: _Path, threads: int = 0) -> Index: ...
def evaluate(sims: npt.ArrayLike, protocol: str = "f30k", threads: int = 0) -> Dict[str, Any]: ...
def train(
    config: Optional[_Path] = None,
    overrides: List[str] = ...,
    resume: Optional[_Path] = None,
    progress: _Progress = None,
) -> Dict[str, Any]: ...
