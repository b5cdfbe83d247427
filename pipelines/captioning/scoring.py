"""Caption scores: pycocoevalcap (BLEU-1..4, METEOR, ROUGE-L, CIDEr) and the most-frequent-caption baseline."""
import collections
import contextlib
import io
import shutil

COCO_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def coco_scores(hypotheses, references):
    """pycocoevalcap scores, under its own key names, of {clip: caption} against {clip: [references]}: the PTB
    tokenizer and METEOR run on Java; without Java the text is lowercased and split on whitespace and METEOR is
    left out (null)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    clips = sorted(hypotheses)
    gts = {c: [{"caption": r} for r in references[c]] for c in clips}
    res = {c: [{"caption": hypotheses[c]}] for c in clips}
    java = shutil.which("java") is not None
    scorers = [(Bleu(4), COCO_KEYS[:4]), (Rouge(), ("ROUGE_L",)), (Cider(), ("CIDEr",))]
    result = {"METEOR": None}
    with contextlib.redirect_stdout(io.StringIO()):  # the scorers print their internals
        if java:
            from pycocoevalcap.meteor.meteor import Meteor
            from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

            tokenizer = PTBTokenizer()
            gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
            scorers.insert(1, (Meteor(), ("METEOR",)))
        else:
            gts = {c: [" ".join(x["caption"].lower().split()) for x in v] for c, v in gts.items()}
            res = {c: [" ".join(x["caption"].lower().split()) for x in v] for c, v in res.items()}
        for scorer, keys in scorers:
            score, _ = scorer.compute_score(gts, res)
            for key, value in zip(keys, score if len(keys) > 1 else [score]):
                result[key] = round(float(value), 4)
    return {key: result[key] for key in COCO_KEYS}


def most_frequent_caption(references):
    """The training split's most frequent reference (ties: the alphabetically first): the baseline every clip gets."""
    counts = collections.Counter(s for refs in references.values() for s in refs)
    return min(counts, key=lambda s: (-counts[s], s))
