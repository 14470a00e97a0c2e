"""The COCO caption tokenizer itself (pycocoevalcap's jar on Java) and caption-like sentences."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np

PUNCTUATIONS = [
    "''",
    "'",
    "``",
    "`",
    "-LRB-",
    "-RRB-",
    "-LCB-",
    "-RCB-",
    ".",
    "?",
    "!",
    ",",
    ":",
    "-",
    "--",
    "...",
    ";",
]


def java_available() -> bool:
    return shutil.which("java") is not None


def jar_tokenize(sentences: list[str], *, sentinel: str | None = "sentinel") -> list[list[str]]:
    """Runs the bundled Stanford PTBTokenizer exactly as pycocoevalcap does, one line per sentence.

    By default a final sentinel line (not a sentence opener) follows the
    sentences, the context ``captioning.tokenize`` assumes for one caption;
    ``sentinel=None`` tokenizes the lines exactly as pycocoevalcap's one file
    (no newline after the last line), the context of ``tokenize_captions``.
    """
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb

    jar_dir = os.path.dirname(os.path.abspath(ptb.__file__))
    text = "\n".join(s.replace("\n", " ") for s in sentences) + ("" if sentinel is None else "\n" + sentinel)
    with tempfile.NamedTemporaryFile("wb", delete=False, suffix=".txt") as f:
        f.write(text.encode("utf-8"))
    try:
        out = subprocess.run(
            [
                "java",
                "-cp",
                ptb.STANFORD_CORENLP_3_4_1_JAR,
                "edu.stanford.nlp.process.PTBTokenizer",
                "-preserveLines",
                "-lowerCase",
                f.name,
            ],
            cwd=jar_dir,
            capture_output=True,
            check=True,
        ).stdout.decode("utf-8")
    finally:
        os.remove(f.name)
    lines = out.split("\n")[: len(sentences)]
    return [[w for w in line.rstrip().split(" ") if w and w not in PUNCTUATIONS] for line in lines]


SUBJECTS = [
    "A man",
    "a woman",
    "Two dogs",
    "The cat",
    "A young boy",
    "Several people",
    "an old lady",
    "A group of kids",
    "THE TRAIN",
    "A Black-and-White photo of a bus",
    "A 2-year-old child",
    "Mr. Smith",
    "Dr. Jones",
    "the U.S. team",
    "A man's dog",
    "The dogs' owner",
    "People",
]
VERBS = [
    "is riding",
    "are sitting on",
    "stands next to",
    "isn't holding",
    "can't reach",
    "won't eat",
    "is looking at",
    "plays with",
    "'s jumping over",
    "are eating",
    "holds",
    "gonna catch",
    "wanna see",
    "cannot find",
    "looks at",
]
OBJECTS = [
    "a surfboard",
    "the red bus",
    "a plate of food",
    "a frisbee",
    "two slices of pizza",
    "a 1,000-pound bull",
    "3.5 inch screws",
    "the St. Louis arch",
    'a sign that says "STOP"',
    "a cat (sleeping)",
    "a laptop/tablet",
    "its owner's shoes",
    "a 50% off sign",
    "a $5 bill",
    "the clock at 3:30 p.m.",
    "a high-chair",
    "an e-mail",
    "AT&T logo",
    "the 1990s car",
    "'the best' pizza",
    "a [blue] box",
    "her {green} hat",
    "an ice-cream cone",
    "a cat's toy",
    "the U.S. flag",
    "a t-shirt",
    "a No. 5 jersey",
    "a 4x4 truck",
    "the 5th floor",
]
TAILS = [
    ".",
    "",
    " .",
    "!",
    "?",
    "...",
    " ; outside",
    ", near the park.",
    " -- in the rain.",
    " at night",
    ": a photo.",
    "!!",
    " etc.",
    " in Washington D.C.",
    " on Main St.",
    " (in color)",
    ", doesn't it?",
    " with a smile :)",
    "  on  a  sunny  day ",
    ".\nAnother line",
]


def caption_like_sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    out = []
    for _ in range(n):
        s = f"{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)}{pick(TAILS)}"
        if rng.random() < 0.3:
            s = f"{s} and {pick(OBJECTS)}{pick(TAILS)}"
        if rng.random() < 0.2:
            s = s.lower()
        out.append(s)
    return out


# Hand-written sentences probing the tokenizer's rules (checked against the jar).
HANDWRITTEN = [
    "A man riding a wave on top of a surfboard.",
    "Don't you think it's a dog's life? They're here; we'll see!",
    "I can't believe he won't go. She'd've done it.",
    "The U.S. flag flies over Washington D.C.",
    'A "red" bus (with people) parked at 5th St.',
    "A black-and-white photo of a 1,000-pound cat... Really!",
    "It costs $5.99, or 50% off -- amazing.",
    "A man/woman with a cat's toy & AT&T logo e.g. the sign.",
    "Two  dogs\tplay in the park   ",
    "Mr. Smith and Mrs. Jones at 3:30 p.m.",
    "A sign that says 'STOP' in red {braces} [brackets].",
    "Let's go, y'all; gonna wanna gotta.",
    "A cat's ear's tip isn't pink... it's white.",
    "He said ``hello'' to me. A * star # hash @ at ^caret ~tilde",
    "café naïve résumé smile :) :-) <3",
    "Things like 4x4 trucks, 3.5mm jacks, and 10:30 am.",
    "There's a boy (age 5) -- and a girl.",
    "This is the end of the U.S.",
    "What?! No way!!! Yes...",
    "I cannot go. Gimme that, lemme see. He's gotta go 'cause it's late.",
    "The dog's bone isn't there; the dogs' bones aren't either.",
    "A woman's hat and a man's coat, o'clock rock'n'roll.",
    'A sign reading "No Parking" on a pole.',
    "Several people at the beach .",
    "A plate of food with broccoli , carrots and rice",
    "THE CAT IS ON THE MAT!",
    "A 2-year-old child in a high-chair.",
    "The sign says ' Welcome ' .",
    "A bus at 7 a.m. on Jan. 5, near the Main St. station, vs. a car etc.",
    "Dr. Who and Prof. X met Gen. Y in Calif. at 5 p.m.",
    "The cats' toys... and the dog..",
    "Some kind of a train-car/engine thing.",
    "Food: pizza, pasta; drinks: soda.",
    "A man's 5' 10\" height.",
    "Three people @ the office #blessed :-( ;) :D",
    "Item 3.5.2 and version 1.2.3a ok.",
    "A cat... ... sitting.",
    "It is 100 % true, $ 10 .",
    "No.1 fan and No. 2 spot.",
    "A 3D TV and the 1990s and 80's music.",
    "Here 's a thing ' s.",
    "The \"quote\" and ''another'' and `this`.",
    "word.Word and end.",
    "A dog with a frisbee in its mouth",
    "A shirt that says I <3 NY",
    "People at 9:00am and 10p.m",
    "a e-mail @home.com www.site.com http://site.com/page",
    "1/2 cup and 3/4 inch and 24/7",
    "end",
    "a cat sitting on a mat.",
    "he will miss. she is ill. time to wash. in the mass. at mo. the pa. in la. on ga. go ind. ",
    "a man in jan. ok. he said no. then no. 5 ok. the co. is big. the inc. is ok. my st. is. the ave. ok. the dept. ok. and etc. ok.",
    "a photo of mr. smith. vs. them. a jr. player. the sr. one. the univ. ok. the mt. view. a gen. ok. a rev. ok.",
    "the art. ok. the sept. one. a fri. night. a tue. one. the col. ok. a capt. ok. the rd. ok. the blvd. ok.",
    "a b. c. d. the e. coli. an x. ok. A. B. Smith.",
    "the U.S. A.M. Aug. 4 and oct. 5. fig. 3 eq. 4 approx. 5 dept. 6 ft. 7 in. 8 lb. 9 oz.",
    "Hello.World and 3.5.",
    "A man is jumping over a fence.And a dog.",
    "4. a list item. 10. another.",
    "a 'quoted phrase' and 'tis and 'em and 'cause and n' roll.",
    "don't DON'T Don't can't CAN'T won't shan't ain't aren't wouldn't couldn't shouldn't",
    "I'm you're we've they'll he'd it'd I'M THEY'RE",
    # the rules behind the 10 val2017 captions an earlier tokenizer got wrong
    "Close up of an hors d'oeuvre on a plate.",
    "O'Brien's dog, ma'am, at Ho'ohu and Pe'e roads",
    "l'amour and L'Oreal and d'arcy and n'ts and Y'know and y'all and b'gosh and mi'ka and caf'e",
    "s'mores and c'mon and 'em and 'till and 'cause and cont'd and Dunkin' and ol' and li'l and e'er",
    "'tis and 'twas and 'twill and 't and nor'easter and YOU'RE and YOU'REX and 'sup and don'tx",
    "Street signs from the corner of 8th ave. and 22 3/4 st.",
    "3 1/2 and 3-1/2 inch and 10 20/30 and 2014/5 20 2014/5",
    "1/2 and 24/7 and 12345/6 and 1/2/3 and a/b/c/d and ab-cd/ef and 1-2/3-4 and a-b-c/d",
    "The #41 bus and #blessed day and #a1 and ## and #café and #a_b and #",
    "@home and a@b.com and @ and @a1 and @_x and @1 and @@ and abc@def",
    'A view of the street signs "W 122 St.", "Seminary Row" near "Main St.", ok (Main St.) ok Inc." ok',
    "etc.) and etc., and etc.! and etc.' and etc.",
    'x., and x.) and x." and x.! and I. and x.',
    "A person I. A hood jacket",
    "J. K. Rowling and I. the dog and U.S. a dog and U.S. A dog and A. Who",
    "B. An apple and K. It, and K. It. and K. It\tx and K. It",
    "Tall boxes are stacked on a brown sidewalk.outside.",
    "sidewalk.outside. The end and hello!world and hi?there and a.b.cd. and ab.cd., and x-ray., and a-b.",
    "no. 5 and no.5 and No. and fig. 3 and ca. 1900 and Mo. mo. Pa. pa. Mass. mass. Ark. ark.",
    "it's 5'10\" tall in the '90s and '90 and a_b and a__b and _x and naïve-ish and 3D-printed",
    "tab\there nbsp\xa0here \u2013 dash \u2014 \u2026 \u201cq\u201d \u2019s x\u2018s n\u2018t don\u2019t don\u2018t",
    "a ~ b ^ c | d \\ e + f = g * h < i > j and S&P-500 and pro- and -LRB- and (555) 123-4567",
    "#1 and US$5 and us$5 and \u00a35 and \u20ac5 and \u00a2 and \u00bd cup and \u2154 and \u00b2",
    "..... and ...... and . . . and .. and -- and --- and ----- and - and \u201eq\u201f \u2039a\u203a \u00abb\u00bb",
    "a \x00 cat \x07 on \x1b[31mmat and a \U0001f469\u200d\U0001f467 family \U0001f408 on e\u0301t\u00e9",
    "www.google.com and http://x.com/a.b and foo.com. and Mr.Smith",
    "end",
]
# lines whose tokens depend on the next line or on being the file's last line
FILE_CONTEXT = [
    "A sign that reads K.",
    "A street.",
    "the U.S.",
    "The end",
    "reads K.",
    "",
    "An x",
    "the x. It",
    "no.",
    "5 x",
    "K. It",
    "'90",
    "reads K. ",
    "  An x",
    "B. An",
    "etc.",
    "Hello K.",
    "with a smile :)",
]


def coco_eval_cap(gt_path: str, results_path: str) -> tuple[dict, dict]:
    """pycocoevalcap's ``COCOEvalCap.evaluate`` on files, restricted to BLEU, ROUGE-L and CIDEr.

    The images are the results file's (``params['image_id'] = cocoRes.getImgIds()``,
    as pycocoevalcap's example does). Returns its ``eval`` and ``imgToEval``.
    """
    import contextlib
    import io

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.eval import COCOEvalCap
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt_path)
        coco_res = coco.loadRes(results_path)
        ev = COCOEvalCap(coco, coco_res)
        ev.params["image_id"] = coco_res.getImgIds()
        # COCOEvalCap.evaluate's own steps, with METEOR and SPICE (Java jobs) left out
        gts = {i: coco.imgToAnns[i] for i in ev.params["image_id"]}
        res = {i: coco_res.imgToAnns[i] for i in ev.params["image_id"]}
        tokenizer = PTBTokenizer()
        gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
        for scorer, method in [
            (Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]),
            (Rouge(), "ROUGE_L"),
            (Cider(), "CIDEr"),
        ]:
            score, scores = scorer.compute_score(gts, res)
            if isinstance(method, list):
                for sc, scs, m in zip(score, scores, method):
                    ev.setEval(sc, m)
                    ev.setImgToEvalImgs(scs, gts.keys(), m)
            else:
                ev.setEval(score, method)
                ev.setImgToEvalImgs(scores, gts.keys(), method)
    return ev.eval, ev.imgToEval
