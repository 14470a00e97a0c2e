"""``python -m rewards.captioning`` on COCO caption files against pycocoevalcap's COCOEvalCap (Java tokenizer)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rewards import captioning
from tests.ptb_oracle import HANDWRITTEN, caption_like_sentences, coco_eval_cap, java_available

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_java = pytest.mark.skipif(not java_available(), reason="java is not installed")


def _write(path: Path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def _synthetic(tmp_path: Path, seed: int = 0, n_images: int = 60):
    """A captions ground truth (raw text, 1-6 captions per image, one image without captions)
    and a results file for most of its images, in another order, with an empty caption."""
    rng = np.random.default_rng(seed)
    sents = caption_like_sentences(400, seed=seed) + HANDWRITTEN[:40]
    images = [{"id": int(i)} for i in rng.permutation(np.arange(100, 100 + n_images))]
    anns = []
    for img in images[:-1]:
        for _ in range(rng.integers(1, 7)):
            anns.append(
                {"id": len(anns) + 1, "image_id": img["id"], "caption": sents[rng.integers(len(sents))]}
            )
    rng.shuffle(anns)
    gt = {"images": images, "annotations": anns}
    scored = [img["id"] for img in images[:-1] if rng.random() < 0.8]
    rng.shuffle(scored)
    results = [{"image_id": i, "caption": sents[rng.integers(len(sents))]} for i in scored]
    results[0]["caption"] = ""
    return _write(tmp_path / "gt.json", gt), _write(tmp_path / "res.json", results)


def _assert_matches(out_json: str, expected_eval: dict, expected_images: dict):
    ours = json.loads(Path(out_json).read_text())
    assert set(ours["metrics"]) == set(captioning.METRICS) == set(expected_eval)
    for name in captioning.METRICS:
        assert ours["metrics"][name] == pytest.approx(expected_eval[name], abs=1e-9), name
    assert {int(k) for k in ours["per_image"]} == set(expected_images)
    for image_id, values in ours["per_image"].items():
        for name in captioning.METRICS:
            assert values[name] == pytest.approx(expected_images[int(image_id)][name], abs=1e-9), (
                image_id,
                name,
            )


@needs_java
@pytest.mark.parametrize("seed", range(2))
def test_cli_matches_cocoevalcap_on_generated_files(tmp_path, seed, capsys):
    gt, res = _synthetic(tmp_path, seed)
    out = str(tmp_path / "out.json")
    assert captioning.main([gt, res, "--json-out", out]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == list(captioning.METRICS)
    _assert_matches(out, *coco_eval_cap(gt, res))


def _real(tmp_path: Path, results_name: str):
    gt_path, res_path = DATA / "captions_val2017.json.gz", DATA / results_name
    if not gt_path.exists() or not res_path.exists():
        pytest.skip("the real COCO caption files are not present")
    gt = json.load(gzip.open(gt_path))
    ids = {img["id"] for img in gt["images"]}
    # the fakecap results are val2014's: 126 of their images are in val2017
    results = [r for r in json.load(gzip.open(res_path)) if r["image_id"] in ids]
    return _write(tmp_path / "gt.json", gt), _write(tmp_path / "res.json", results), str(gt_path)


@needs_java
@pytest.mark.parametrize(
    "results_name",
    [
        "coco-caption_captions_val2014_fakecap_results.json.gz",
        "cocoapi_captions_val2014_fakecap_results.json.gz",
    ],
)
def test_cli_matches_cocoevalcap_on_real_val2017_captions(tmp_path, results_name):
    gt, res, gt_gz = _real(tmp_path, results_name)
    out = str(tmp_path / "out.json")
    assert captioning.main([gt_gz, res, "--json-out", out]) == 0  # .json.gz read directly
    _assert_matches(out, *coco_eval_cap(gt, res))


def _bad(tmp_path, capsys, results, gt=None):
    gt = gt or {
        "images": [{"id": 1}, {"id": 2}],
        "annotations": [
            {"id": 1, "image_id": 1, "caption": "A cat."},
            {"id": 2, "image_id": 2, "caption": "A dog."},
        ],
    }
    code = captioning.main([_write(tmp_path / "gt.json", gt), _write(tmp_path / "res.json", results)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    return captured.err


def test_bad_input_exits_2_with_a_named_error(tmp_path, capsys):
    err = _bad(tmp_path, capsys, [{"image_id": 1, "caption": "a cat"}, {"image_id": 7, "caption": "a cat"}])
    assert "image 7 is not in the ground truth" in err
    err = _bad(tmp_path, capsys, [{"image_id": 1, "caption": "a cat"}, {"image_id": 1, "caption": "a dog"}])
    assert "entry 1 is a second result for image 1" in err
    err = _bad(tmp_path, capsys, [{"image_id": 2, "caption": 3}])
    assert "entry 0 (image 2) has a int 'caption'" in err
    err = _bad(tmp_path, capsys, [{"image_id": "1", "caption": "a"}])
    assert "entry 0 needs an integer 'image_id'" in err
    assert "results list is empty" in _bad(tmp_path, capsys, [])
    assert "is a list of" in _bad(tmp_path, capsys, {"image_id": 1})
    err = _bad(
        tmp_path,
        capsys,
        [{"image_id": 1, "caption": "a"}],
        gt={"images": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "caption": None}]},
    )
    assert "annotations[0] (image 1) has a NoneType 'caption'" in err
    err = _bad(
        tmp_path, capsys, [{"image_id": 1, "caption": "a"}], gt={"images": [{"id": 1}], "annotations": []}
    )
    assert "image 1 has a result but no reference caption" in err
    (tmp_path / "broken.json").write_text("{not json")
    assert captioning.main([str(tmp_path / "broken.json"), str(tmp_path / "res.json")]) == 2
    assert "not valid json" in capsys.readouterr().err.lower()
    assert captioning.main([str(tmp_path / "missing.json"), str(tmp_path / "res.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_document_frequencies_cli_writes_what_cider_reward_batch_loads(tmp_path, capsys):
    gt, _ = _synthetic(tmp_path, seed=3)
    out = tmp_path / "train-df.npz"
    assert captioning.main(["df", gt, str(out)]) == 0
    assert "written to" in capsys.readouterr().out
    loaded = captioning.DocumentFrequencies.load(out)
    refs = list(captioning.coco_references(gt).values())
    direct = captioning.document_frequencies(refs)
    assert loaded.n_images == direct.n_images == len(refs) and loaded.words == direct.words
    cands = [r[0] for r in refs]
    np.testing.assert_array_equal(
        captioning.cider_reward_batch(cands, refs, loaded), captioning.cider_reward_batch(cands, refs, direct)
    )
    assert captioning.main(["df", str(tmp_path / "missing.json"), str(out)]) == 2


def test_python_dash_m_runs_the_module_once(tmp_path):
    gt, res = _synthetic(tmp_path, seed=5, n_images=8)
    proc = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "rewards.captioning", gt, res],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout.splitlines()[-1].startswith("CIDEr: ")
    proc = subprocess.run(
        [sys.executable, "-m", "rewards.captioning", gt, str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stdout == ""


def _readme_section() -> str:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return text.split("<!-- BEGIN coco-captions -->")[1].split("<!-- END coco-captions -->")[0]


def test_readme_commands_run_and_print_what_it_shows(tmp_path, monkeypatch):
    import re
    import shlex

    section = _readme_section()
    _, results, _ = _real(tmp_path, "coco-caption_captions_val2014_fakecap_results.json.gz")
    (tmp_path / "captions_val2017.json.gz").symlink_to(DATA / "captions_val2017.json.gz")
    Path(results).rename(tmp_path / "fakecap_results.json")
    train, _ = _synthetic(tmp_path, seed=7)
    Path(train).rename(tmp_path / "captions_train2017.json")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```console\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    for block in blocks:
        lines = block.strip().splitlines()
        argv = shlex.split(lines[0].removeprefix("$ "))
        assert argv[:3] == ["python", "-m", "rewards.captioning"]
        proc = subprocess.run(
            [sys.executable, *argv[1:]],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        assert proc.returncode == 0, proc.stderr
        if len(lines) > 1:
            assert proc.stdout.splitlines() == lines[1:]
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert set(scores) == {"metrics", "per_image"} and len(scores["per_image"]) == 126
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["rewards"].shape == (2,) and namespace["rewards"][0] > namespace["rewards"][1]
