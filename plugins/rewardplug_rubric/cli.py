"""``rewardplug rubric ...`` commands, added to the CLI through the ``register_commands`` hook.

* ``rewardplug rubric check FILE...`` validates rubric files (or library names) and prints a
  summary; exit status 1 with the precise errors when one is invalid.
* ``rewardplug rubric generate PROMPTS.jsonl -o RUBRICS.jsonl`` writes a per-prompt checklist for
  every prompt with a judge backend (see :mod:`rewardplug_rubric.generate`).
* ``rewardplug rubric list`` names the rubrics in the shipped library.
* ``rewardplug rubric refine RUBRIC DATA.jsonl -o NEW.yaml`` adds criteria that separate tied
  responses, kept only when they raise held-out DA (see :mod:`rewardplug_rubric.refine`).

The commands are thin: the work is done by :func:`~rewardplug_rubric.model.load_rubric` and
:func:`~rewardplug_rubric.generate.generate_rubrics`, which Python users call directly.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click


@click.group("rubric")
def rubric() -> None:
    """Rubrics: validate rubric files and generate per-prompt checklists."""


@rubric.command("check")
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary per rubric.")
def check(files: tuple[str, ...], as_json: bool) -> None:
    """Validate rubric FILES (paths or names in the rubric library)."""
    from rewardplug_rubric.model import RubricError, load_rubric

    failed = 0
    for spec in files:
        try:
            r = load_rubric(spec)
        except RubricError as exc:
            failed += 1
            click.echo(f"error: {exc}", err=True)
            continue
        summary: dict[str, Any] = {
            "file": spec,
            "name": r.name,
            "aggregate": r.aggregate,
            "criteria": len(r.criteria),
            "kinds": sorted({c.kind for c in r.criteria}),
            "needs_judge": r.has_judged,
            "total_weight": round(sum(c.effective_weight for c in r.criteria), 6),
        }
        if as_json:
            click.echo(json.dumps(summary))
        else:
            judge = "needs a judge" if r.has_judged else "programmatic"
            click.echo(
                f"ok: {spec}: rubric {r.name!r}, {len(r.criteria)} criteria "
                f"({', '.join(summary['kinds'])}), {r.aggregate}, {judge}"
            )
    if failed:
        sys.exit(1)


@rubric.command("list")
def list_rubrics() -> None:
    """Name the rubrics of the shipped library (``rewardplug.paths.rubrics_dir()``)."""
    from rewardplug_rubric.model import RubricError, available_rubrics, load_rubric

    for name in available_rubrics():
        try:
            description = load_rubric(name).description.strip().split("\n", 1)[0]
        except RubricError as exc:
            description = f"INVALID: {str(exc).splitlines()[0]}"
        click.echo(f"{name}: {description}")


@rubric.command("generate")
@click.argument("prompts_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="RUBRICS.jsonl"
)
@click.option("--backend", default=None, help="Judge backend: openai | litellm | transformers.")
@click.option("--model", default=None, help="Judge model (name, folder or .gguf file).")
@click.option("--base-url", default=None, help="Server URL for the openai backend.")
@click.option("--judge-config", default=None, help="JSON/YAML mapping of judge backend settings.")
@click.option("--prompt-field", default="prompt", show_default=True, help="Column with the prompt.")
@click.option(
    "--reference-field",
    "reference_fields",
    multiple=True,
    help="Column(s) with reference responses shown to the writer (repeatable).",
)
@click.option("--max-criteria", default=8, show_default=True, type=click.IntRange(1, 30))
@click.option("--aggregate", default="weighted_mean", show_default=True)
def generate(
    prompts_file: str,
    output: str,
    backend: str | None,
    model: str | None,
    base_url: str | None,
    judge_config: str | None,
    prompt_field: str,
    reference_fields: tuple[str, ...],
    max_criteria: int,
    aggregate: str,
) -> None:
    """Write a per-prompt checklist (``rubric`` column) for every row of PROMPTS_FILE."""

    from rewardplug_rubric.generate import generate_file
    from rewardplug_rubric.model import RubricError

    settings = _judge_settings(judge_config, backend=backend, model=model, base_url=base_url)
    try:
        stats = generate_file(
            prompts_file,
            output,
            judge=settings,
            prompt_field=prompt_field,
            reference_fields=list(reference_fields),
            max_criteria=max_criteria,
            aggregate=aggregate,
        )
    except (ValueError, RubricError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"wrote {stats['written']} rubrics to {output} "
        f"({stats['failed']} prompts without a usable checklist)",
        err=True,
    )


@rubric.command("refine")
@click.argument("rubric_spec", metavar="RUBRIC")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="NEW.yaml")
@click.option("--gold", "gold_field", default="gold", show_default=True, help="Gold column.")
@click.option("--backend", default=None, help="Judge backend: openai | litellm | transformers.")
@click.option("--model", default=None, help="Judge model (name, folder or .gguf file).")
@click.option("--base-url", default=None, help="Server URL for the openai backend.")
@click.option("--judge-config", default=None, help="JSON/YAML mapping of judge backend settings.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1, 50))
@click.option("--tries", default=3, show_default=True, type=click.IntRange(1, 20),
              help="Proposals per round when the judge's are invalid.")  # fmt: skip
@click.option("--holdout", default=0.5, show_default=True, type=click.FloatRange(0.05, 0.95),
              help="Fraction of groups held out to decide whether a criterion is kept.")  # fmt: skip
@click.option("--samples", "samples_k", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--confidence", default=0.9, show_default=True, type=click.FloatRange(0.5, 1.0))
@click.option("--min-gain", default=0.0, show_default=True, type=float)
@click.option("--max-sp-drop", default=0.05, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--log", "log_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the round log as JSON lines here.")  # fmt: skip
def refine(
    rubric_spec: str,
    data: str,
    output: str,
    gold_field: str,
    backend: str | None,
    model: str | None,
    base_url: str | None,
    judge_config: str | None,
    log_path: str | None,
    **options: Any,
) -> None:
    """Refine RUBRIC with criteria that separate tied responses in DATA (kept if DA rises)."""
    from pathlib import Path

    import yaml

    from rewardplug import read_samples
    from rewardplug_rubric import refine as R
    from rewardplug_rubric.model import RubricError, load_rubric

    settings = _judge_settings(judge_config, backend=backend, model=model, base_url=base_url)
    try:
        start = load_rubric(rubric_spec)
        samples = read_samples(data)
    except (RubricError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    gold = [_number(s.field(gold_field)) for s in samples]
    if all(g is None for g in gold):
        raise click.ClickException(f"no row of {data} has a numeric {gold_field!r} field (--gold)")

    def show(entry: dict[str, Any]) -> None:
        click.echo(json.dumps(entry, default=str), err=True)

    try:
        refined, log = R.refine(start, samples, gold, settings, on_round=show, **options)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    body = refined.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    body.setdefault("name", refined.name)
    body["criteria"] = [
        c.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {"id": c.id}
        for c in refined.criteria
    ]
    Path(output).write_text(yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    if log_path:
        Path(log_path).write_text("".join(json.dumps(e, default=str) + "\n" for e in log))
    kept = sum(1 for e in log if e.get("status") == "kept")
    click.echo(f"wrote {output}: {kept} criteria added in {len(log) - 1} rounds", err=True)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _judge_settings(judge_config: str | None, **flags: str | None) -> dict[str, Any]:
    """The judge backend settings: ``--judge-config`` (a JSON/YAML mapping), then the flags
    that were given (``--backend``, ``--model``, ``--base-url``) on top."""
    import yaml

    settings: Any = yaml.safe_load(judge_config) if judge_config else {}
    if not isinstance(settings, dict):
        raise click.BadParameter("must be a mapping", param_hint="--judge-config")
    settings.update({key: value for key, value in flags.items() if value is not None})
    return settings
