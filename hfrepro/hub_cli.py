"""`hfrepro push`: share a run's model, or a dataset with its card, on the Hugging Face Hub.

    hfrepro push runs/smoke --repo-id you/smoke-gpt2              # the run folder is the repository
    hfrepro push runs/smoke --repo-id you/smoke-gpt2 --dry-run    # what would be uploaded; no token needed
    hfrepro push --dataset wordsim353 --repo-id you/wordsim353    # an embedded dataset + data_cards/wordsim353.md
    hfrepro push --dataset pairs.jsonl --card my_card.md --repo-id you/pairs --private

Everything is checked before anything is sent (repo id, token, Hub reachable, token allowed to write there,
the card, no token inside the files); the upload is one commit, so a failed push leaves nothing half-done.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from hfrepro import assets, data, hub
from hfrepro.cards import check_dataset_card
from hfrepro.errors import UserError
from hfrepro.paths import DATA_CARDS_DIR


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push", help="push a run's model (or a dataset with its card) to the Hugging Face Hub",
        description="Push a run folder (the model, its card and the run's record: config.yaml, metrics.json, "
                    "log.jsonl; checkpoints never) or a dataset (Parquet per split + its card) to the Hub, "
                    "as one commit, through huggingface_hub's HfApi. Needs a token (HF_TOKEN or "
                    "`hf auth login`); --dry-run shows what would be uploaded without one.",
        epilog="examples:\n  hfrepro push runs/smoke --repo-id you/smoke-gpt2\n"
               "  hfrepro push --dataset wordsim353 --repo-id you/wordsim353 --private",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", help="a run folder or a model folder")
    p.add_argument("--dataset", help="an embedded dataset name (card from data_cards/NAME.md), a data file "
                                     "(.txt/.jsonl/.tsv/.csv) or a saved dataset folder")
    p.add_argument("--card", help="the dataset card (Markdown with YAML metadata); default data_cards/NAME.md")
    p.add_argument("--repo-id", "--repo_id", dest="repo_id", help="the Hub repo: user/name (or org/name)")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--message", default=None, help="commit message")
    p.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                   help="check and list what would be uploaded; contact nothing")
    p.set_defaults(func=_push)


def _push(args) -> int:
    if bool(args.run_dir) == bool(args.dataset):
        raise UserError("give either RUN_DIR or --dataset NAME (exactly one)",
                        fix="hfrepro push runs/x --repo-id you/name   or   hfrepro push --dataset NAME --repo-id "
                            "you/name")
    if args.dataset:
        return _push_dataset(args)
    plan = hub.plan_upload(args.run_dir, repo_type="model", repo_id=args.repo_id)  # local checks first
    return _do(plan, _request(args, "model"), args, what=args.run_dir)


def _request(args, repo_type: str):
    """The checked push request (token, Hub, permissions); in a dry run only the repo id's syntax."""
    if args.dry_run:
        if args.repo_id:
            _check_id_syntax(args.repo_id)
        return hub.HubRequest(repo_id=args.repo_id or "user/name", private=args.private)
    return hub.validate_push(args.repo_id, args.private, repo_type=repo_type)


def _push_dataset(args) -> int:
    name = args.dataset
    if args.card:
        card = Path(args.card)
    elif name in assets.ASSETS:
        card = DATA_CARDS_DIR / f"{name}.md"
    else:
        raise UserError(f"{name!r} is not an embedded dataset: say which card describes it",
                        fix="pass --card my_card.md (write one with hfrepro.cards.write_dataset_card)")
    if not card.is_file():
        raise UserError(f"no dataset card for {name!r}: {card} does not exist",
                        fix="write one (hfrepro.cards.write_dataset_card) and pass it with --card, or add "
                            f"data_cards/{name}.md")
    problems = check_dataset_card(card)
    if problems:
        raise UserError("the dataset card is not valid: " + "; ".join(problems), where=str(card),
                        fix="fix the card, then push again")
    req = _request(args, "dataset")
    dd = data.load(name)
    with tempfile.TemporaryDirectory(prefix="hfrepro-push-") as tmp:
        folder = hub.export_dataset(dd, Path(tmp) / "repo", card)
        plan = hub.plan_upload(folder, repo_type="dataset", repo_id=req.repo_id)
        return _do(plan, req, args, what=f"dataset {name}")


def _check_id_syntax(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise UserError(f"invalid Hub repo id {repo_id!r}: {e}", fix="use the form user/name") from None


def _do(plan, req, args, what: str) -> int:
    if args.dry_run:
        hub._check_card(plan)
        hub.check_no_token(plan)
        print(f"dry run: {what} -> {req.repo_id} ({plan.repo_type}{', private' if req.private else ''})")
        print(plan.describe())
        print("nothing was uploaded (--dry-run).")
        return 0
    print(f"pushing {what} -> {req.repo_id} ({plan.repo_type}{', private' if req.private else ''}): "
          f"{len(plan.files)} files in one commit", file=sys.stderr)
    url = hub.push_plan(plan, req, commit_message=args.message or f"Upload {what} with hfrepro")
    print(f"pushed {len(plan.files)} files to {req.repo_id}: {url}")
    return 0
