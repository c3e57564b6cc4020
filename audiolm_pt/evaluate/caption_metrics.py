"""Caption quality: BLEU-1..4, ROUGE-L and CIDEr-D through pycocoevalcap's scorers (pure
Python), METEOR through its Java scorer where Java is installed. pycocoevalcap's PTB tokenizer
needs Java, so text is tokenised here instead: lower case, words and numbers, possessive "'s"
split off, punctuation dropped. SPICE (a Stanford CoreNLP download), SPIDEr (needs SPICE) and
FENSE (model weights) cannot run offline and are reported as unavailable, never estimated."""

import re
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

_WORD = re.compile(r"[a-z0-9]+|'[a-z]+")
UNAVAILABLE = {
    "SPICE": "unavailable offline: needs Stanford CoreNLP models",
    "SPIDEr": "unavailable offline: needs SPICE",
    "FENSE": "unavailable offline: needs pretrained model weights",
}


def tokenize(text: str) -> str:
    return " ".join(_WORD.findall(text.lower().replace("\u2019", "'")))


def _meteor(gts, res) -> float | str:
    if shutil.which("java") is None:
        return "unavailable: no Java runtime"
    try:
        from pycocoevalcap.meteor.meteor import Meteor

        return float(Meteor().compute_score(gts, res)[0])
    except Exception as err:  # the Java scorer failing must not lose the other metrics
        return f"unavailable: METEOR failed ({type(err).__name__}: {err})"


def caption_scores(
    references: Mapping[str, Sequence[str]], hypotheses: Mapping[str, str], meteor: bool = True
) -> dict[str, Any]:
    """Corpus-level scores of one hypothesis per id against that id's references."""
    if set(references) != set(hypotheses):
        raise ValueError("references and hypotheses must have the same ids")
    if not references:
        raise ValueError("no captions to score")
    gts = {k: [tokenize(r) for r in refs] for k, refs in references.items()}
    res = {k: [tokenize(h)] for k, h in hypotheses.items()}
    if any(not refs for refs in gts.values()):
        raise ValueError("every id needs at least one reference")
    bleu = Bleu(4).compute_score(gts, res, verbose=0)[0]
    out: dict[str, Any] = {f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)}
    out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr-D"] = float(Cider().compute_score(gts, res)[0])
    out["METEOR"] = _meteor(gts, res) if meteor else "not requested"
    out.update(UNAVAILABLE)
    return out
