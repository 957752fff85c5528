"""Placeholder; replaced once the llm_judge backend API lands."""

from __future__ import annotations

from typing import Any


def validate_judge_settings(settings: dict[str, Any]) -> dict[str, Any]:
    return settings


class RubricJudge:
    def __init__(self, settings: dict[str, Any]):
        raise NotImplementedError
