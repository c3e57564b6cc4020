"""Caption metrics on known examples: BLEU and ROUGE-L by hand, CIDEr-D against an
independent implementation of its definition (Vedantam et al. 2015, the -D variant)."""

import collections
import math
import shutil

import pytest

from audiolm_pt.evaluate.caption_metrics import caption_scores, tokenize

REFS = {
    "a": ["The cat is on the mat.", "There is a cat on the mat"],
    "b": ["A dog barks loudly", "a dog is barking"],
    "c": ["rain falls on a tin roof", "heavy rain on a roof"],
}
HYPS = {"a": "the cat the cat on the mat", "b": "a dog barks", "c": "rain on the roof"}


def test_tokenize_drops_punctuation_and_splits_possessives():
    assert tokenize("A dog's bark, LOUDLY!") == "a dog 's bark loudly"


def test_bleu_and_rouge_hand_computed():
    out = caption_scores({"x": ["the cat is on the mat"]}, {"x": "the cat the cat on the mat"})
    # clipped unigrams 5/7, bigrams 3/6; hypothesis longer than the reference: no penalty
    assert out["BLEU-1"] == pytest.approx(5 / 7, rel=1e-6)
    assert out["BLEU-2"] == pytest.approx(math.sqrt(5 / 7 * 3 / 6), rel=1e-6)
    # LCS "the cat on the mat" = 5: P = 5/7, R = 5/6, F_beta with beta = 1.2
    p, r, b2 = 5 / 7, 5 / 6, 1.2**2
    assert out["ROUGE-L"] == pytest.approx((1 + b2) * p * r / (r + b2 * p), rel=1e-6)
    exact = caption_scores({"x": ["the cat sat on the mat"]}, {"x": "The cat sat on the mat."})
    assert exact["BLEU-4"] == pytest.approx(1.0, rel=1e-6)


def _ngrams(words, n):
    return collections.Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def _cider_d(refs, hyps, sigma=6.0):
    """CIDEr-D written from the paper: tf-idf n-gram vectors (idf from the references'
    document frequency), hypothesis counts clipped by the reference's, Gaussian length
    penalty, mean over references and n = 1..4, times 10."""
    refs = {k: [tokenize(r).split() for r in v] for k, v in refs.items()}
    hyps = {k: tokenize(h).split() for k, h in hyps.items()}
    num_docs = len(refs)
    df = collections.Counter()
    for rs in refs.values():
        df.update({g for r in rs for n in range(1, 5) for g in _ngrams(r, n)})

    def vec(words, n):
        return {
            g: c * (math.log(num_docs) - math.log(max(1.0, df[g])))
            for g, c in _ngrams(words, n).items()
        }

    total = 0.0
    for k, hyp in hyps.items():
        per_n = []
        for n in range(1, 5):
            vh = vec(hyp, n)
            sims = []
            for ref in refs[k]:
                vr = vec(ref, n)
                dot = sum(min(v, vr.get(g, 0.0)) * vr.get(g, 0.0) for g, v in vh.items())
                norm = math.sqrt(sum(v * v for v in vh.values())) * math.sqrt(
                    sum(v * v for v in vr.values())
                )
                sim = dot / norm if norm else 0.0
                sims.append(sim * math.exp(-((len(hyp) - len(ref)) ** 2) / (2 * sigma**2)))
            per_n.append(sum(sims) / len(sims))
        total += 10.0 * sum(per_n) / 4
    return total / len(hyps)


def test_cider_d_matches_its_definition():
    out = caption_scores(REFS, HYPS, meteor=False)
    assert out["CIDEr-D"] == pytest.approx(_cider_d(REFS, HYPS), rel=1e-6)
    assert out["CIDEr-D"] > 0.1


def test_offline_unavailable_metrics_are_declared_not_faked():
    out = caption_scores(REFS, HYPS, meteor=False)
    for name in ("SPICE", "SPIDEr", "FENSE"):
        assert out[name].startswith("unavailable")
    assert out["METEOR"] == "not requested"


@pytest.mark.slow  # the Java scorer loads its paraphrase tables: tens of seconds
@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_with_java():
    perfect = caption_scores({"x": ["a dog barks loudly"]}, {"x": "a dog barks loudly"})
    assert perfect["METEOR"] == pytest.approx(1.0, abs=0.01)
    partial = caption_scores(REFS, HYPS)
    assert 0.0 < partial["METEOR"] < perfect["METEOR"]


def test_mismatched_ids_fail():
    with pytest.raises(ValueError, match="same ids"):
        caption_scores({"x": ["a"]}, {"y": "a"})
