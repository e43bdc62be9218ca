"""find_objects scoring: the query's teacher-forced log-likelihood given each object's tokens."""

from __future__ import annotations

import pytest
import torch

from pam_ros.core.features import RegionFeatures
from pam_ros.semantics import InvalidRequestError, SemanticEngine
from pam_ros.testing.random_pam import write_random_checkpoint


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> SemanticEngine:
    folder = write_random_checkpoint(tmp_path_factory.mktemp("pam") / "PAM-tiny", size="tiny")
    return SemanticEngine.from_pretrained(folder, device="cpu")


def _objects(count: int, seed: int = 0) -> list[RegionFeatures]:
    gen = torch.Generator().manual_seed(seed)
    return [
        RegionFeatures(
            torch.randn(256, 16, 16, generator=gen), torch.randn(2, 256, generator=gen), i
        )
        for i in range(count)
    ]


def _direct_score(engine: SemanticEngine, features, query: str, kind: str, end: bool) -> float:
    """One object, no padding, all logits: mean log p(query token | prompt, earlier tokens)."""
    ids = engine.tokenizer(query, add_special_tokens=False)["input_ids"]
    if end:
        ids = [*ids, engine.tokenizer.convert_tokens_to_ids("<|im_end|>")]
    from pam_ros.semantics import DescribeRequest

    prepared = engine._prepare(0, DescribeRequest(kind, [features]))
    with torch.no_grad():
        prompt, _ = engine._batch_inputs([prepared])  # (1, L, H)
        answer = engine.model.embed_text(torch.tensor(ids)).unsqueeze(0)
        logits = engine.model.language_model(
            inputs_embeds=torch.cat([prompt, answer], dim=1)
        ).logits[0]
        logp = torch.log_softmax(logits, dim=-1)
        length = prompt.shape[1]
        picked = [logp[length - 1 + i, token] for i, token in enumerate(ids)]
    return float(torch.stack(picked).mean())


@pytest.mark.parametrize(("about", "kind"), [("category", "category"), ("function", "explain")])
def test_scores_equal_a_direct_teacher_forced_computation(engine, about, kind) -> None:
    objects = _objects(5, seed=1)
    query = "something to cut with" if about == "function" else "a cup"
    scores = engine.score_query(objects, query, about=about)
    direct = [_direct_score(engine, f, query, kind, end=about == "category") for f in objects]
    assert scores == pytest.approx(direct, abs=1e-4)
    assert all(s < 0 for s in scores)
    assert max(scores) - min(scores) > 1e-3  # informative: objects differ


def test_ranking_is_stable_across_calls_and_batch_sizes(engine) -> None:
    objects = _objects(6, seed=2)
    first = engine.score_query(objects, "a red mug", language="en")
    again = engine.score_query(objects, "a red mug", language="en")
    assert first == again
    alone = [engine.score_query([f], "a red mug")[0] for f in objects]
    assert alone == pytest.approx(first, abs=1e-4)
    order = sorted(range(6), key=lambda i: -first[i])
    assert order == sorted(range(6), key=lambda i: -alone[i])
    assert engine.score_query(objects, "a red mug") != engine.score_query(objects, "a knife")
    zh = engine.score_query(objects, "杯子", language="zh")
    assert len(zh) == 6 and len(set(zh)) > 1


def test_bad_queries_get_clear_errors_and_the_engine_keeps_working(engine) -> None:
    objects = _objects(2, seed=3)
    with pytest.raises(InvalidRequestError, match="empty"):
        engine.score_query(objects, "   ")
    with pytest.raises(InvalidRequestError, match="at most 64"):
        engine.score_query(objects, "cup " * 80)
    with pytest.raises(InvalidRequestError, match="no objects"):
        engine.score_query([], "a cup")
    with pytest.raises(InvalidRequestError, match="about must be"):
        engine.score_query(objects, "a cup", about="colour")
    with pytest.raises(InvalidRequestError, match="language"):
        engine.score_query(objects, "a cup", language="fr")
    assert len(engine.score_query(objects, "a cup")) == 2
