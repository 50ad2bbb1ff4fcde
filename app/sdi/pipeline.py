"""The SDI pipeline in the paper's four stages, as pure functions of its inputs and a seed.

Nothing here reads the database or calls a model: the service gathers the inputs (questions,
test statements, templates, a verdict parser, a token counter, optional teacher/paraphraser
callables) and stores the result. The same inputs and seed give the same examples, in the
same order, with the same stats.
"""

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.sdi import augmentation, generation, integration, preprocessing
from app.sdi.generation import PromptOption, VerdictParser
from app.sdi.integration import Leak
from app.sdi.openai_format import rough_token_count
from app.sdi.schemas import BuildConfig
from app.sdi.types import Draft, QuestionData, StageLog, Writer


class LeakageError(ValueError):
    """Training statements match test statements and the build was asked to refuse."""

    def __init__(self, leaks: list[Leak], general: list[str]) -> None:
        parts = [
            f"{leak.train_statement!r} matches test statement {leak.test_statement!r}"
            + ("" if leak.exact else f" ({leak.score:.0f}% similar)")
            for leak in leaks
        ]
        parts += [f"a general example mentions test statement {s!r}" for s in general]
        super().__init__(
            f"{len(parts)} training item(s) leak from the test set: "
            + "; ".join(parts[:10])
            + ("; ..." if len(parts) > 10 else "")
            + ". Choose leakage 'remove' to drop them, or another test set."
        )
        self.leaks = leaks
        self.general = general


@dataclass
class PipelineInputs:
    questions: list[QuestionData]
    options: list[PromptOption]
    parse_verdict: VerdictParser
    test_questions: list[QuestionData] = field(default_factory=list)
    general: list[Draft] = field(default_factory=list)
    # Normalised statements the base model answered wrongly (None: no filtration).
    wrong_statements: set[str] | None = None
    count_tokens: Callable[[str], int] = rough_token_count
    tokenizer_label: str = "about 4 characters per token"
    teacher: Writer | None = None
    paraphraser: Writer | None = None


@dataclass
class PipelineResult:
    drafts: list[Draft]
    stats: dict[str, Any]


def check_leakage(
    cfg: BuildConfig, inputs: PipelineInputs
) -> tuple[dict[str, Leak], dict[int, str]]:
    leaks = integration.find_leaks(inputs.questions, inputs.test_questions, cfg.leakage_threshold)
    general = integration.general_example_leaks(
        inputs.general, inputs.test_questions, cfg.leakage_threshold
    )
    if (leaks or general) and cfg.leakage == "refuse":
        raise LeakageError(list(leaks.values()), sorted(set(general.values())))
    return leaks, general


def run_pipeline(cfg: BuildConfig, inputs: PipelineInputs) -> PipelineResult:
    rng = random.Random(cfg.seed)
    leaks, general_leaks = check_leakage(cfg, inputs)
    logs: list[StageLog] = []

    def stage(name: str, paper_stage: str) -> StageLog:
        log = StageLog(name, stage=paper_stage)
        logs.append(log)
        return log

    # 1. Generation
    drafts = generation.generate(
        inputs.questions,
        [str(k) for k in cfg.kinds],
        inputs.options,
        cfg.size,
        rng,
        stage("scenarios and prompting", "generation"),
    )
    crafting = stage("response crafting", "generation")
    crafting.count_in = len(drafts)
    if inputs.teacher is not None:
        drafts = generation.attach_teacher_replies(
            drafts, inputs.teacher, inputs.parse_verdict, crafting
        )
        crafting.details["writer"] = "teacher model"
    else:
        generation.attach_template_replies(drafts, rng)
        crafting.details["writer"] = "reply templates"
    crafting.count_out = len(drafts)

    # 2. Augmentation
    drafts = augmentation.augment(
        drafts,
        cfg.rates,
        inputs.options,
        rng,
        stage("paraphrasing, contextual diversity, noise", "augmentation"),
        paraphraser=inputs.paraphraser,
    )

    # 3. Integration
    offset = len(drafts)  # general examples follow the synthetic ones
    drafts = integration.merge(
        drafts, inputs.general, stage("merge with original data", "integration")
    )
    drafts = integration.remove_leaks(
        drafts,
        leaks,
        {offset + i: s for i, s in general_leaks.items()},
        stage("leakage check against the test set", "integration"),
    )
    logs[-1].details["mode"] = cfg.leakage
    logs[-1].details["threshold"] = cfg.leakage_threshold
    if inputs.wrong_statements is not None:
        drafts = integration.filtrate(
            drafts, inputs.wrong_statements, stage("filtration (Wei et al.)", "integration")
        )
    drafts = integration.quality_assurance(
        drafts,
        inputs.parse_verdict,
        cfg.near_duplicate_threshold,
        stage("quality assurance", "integration"),
    )
    drafts = integration.balance(
        drafts, cfg.size, rng, stage("balance truth x stance x kind", "integration")
    )

    # 4. Preprocessing
    prep = stage("split, tokens, format check", "preprocessing")
    prep.count_in = len(drafts)
    preprocessing.add_system_prompt(drafts, cfg.system_prompt)
    rng.shuffle(drafts)  # training order: kinds and statements interleaved
    preprocessing.split(drafts, cfg.validation_fraction, rng, prep)
    preprocessing.count_tokens(drafts, inputs.count_tokens, inputs.tokenizer_label, prep)
    preprocessing.validate_openai(drafts, cfg.token_limit, inputs.count_tokens, prep)
    prep.count_out = len(drafts)

    return PipelineResult(drafts=drafts, stats=_stats(drafts, logs))


def _stats(drafts: list[Draft], logs: list[StageLog]) -> dict[str, Any]:
    cells: Counter[tuple[str, str, str, str]] = Counter()
    for draft in drafts:
        if draft.question is not None:
            cells[(*draft.cell, draft.split)] += 1
    table = []
    for kind, stance, truth in sorted({key[:3] for key in cells}):
        train = cells[(kind, stance, truth, "train")]
        validation = cells[(kind, stance, truth, "validation")]
        table.append(
            {
                "kind": kind,
                "stance": stance,
                "truth": truth,
                "count": train + validation,
                "train": train,
                "validation": validation,
            }
        )
    prep = logs[-1].details
    origins = Counter(d.origin for d in drafts)
    return {
        "stages": [log.as_dict() for log in logs],
        "cells": table,
        "examples": len(drafts),
        "origins": dict(sorted(origins.items())),
        "splits": prep.get("split", {}),
        "tokens": prep.get("tokens", {}),
        "openai_validation": prep.get("openai_validation", {}),
    }
