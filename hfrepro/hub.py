"""Pushing to the Hugging Face Hub with huggingface_hub's own API: the top of the house, used by recipes and
`hfrepro push`, never by the library below them.

    req = hub_request(training_args)        # right after parsing: repo id, token, Hub checked; UserError if not
    ...train..., trainer.save_model(), write_model_card(run.path, ...)
    if req: push_folder(run.path, req)      # one commit; checkpoints and the lock never uploaded

Recipes take the push settings from their TrainingArguments / TRL config, or from `OutputArguments` (the same
names: push_to_hub, hub_model_id, hub_private_repo, hub_token). Datasets push as dataset repositories (Parquet
per split + the card): `push_dataset(dataset_dict, req, card=...)`. Nothing here speaks HTTP itself:
`HfApi.create_repo` + one `HfApi.create_commit`.

The token is read by huggingface_hub (HF_TOKEN or `hf auth login`) and only ever handed to `HfApi`; it is
never logged or written, and a push refuses to upload any file that contains it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from hfrepro.cards import REPO_PLACEHOLDER, check_dataset_card, check_model_card, model_card, read_json_or_empty
from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_dir, human_size
from hfrepro.hubenv import endpoint


@dataclass
class HubRequest:
    repo_id: str
    private: bool
    token: str | None = field(default=None, repr=False)  # only set when given explicitly (hub_token)

    def __getstate__(self):  # never pickle a token
        return {**self.__dict__, "token": None}


def hub_request(*parsed: Any, default_name: str | None = None) -> HubRequest | None:
    """Read push settings from parsed argument dataclasses; validate them before any work starts.

    Returns None when no push is asked for. `default_name` (e.g. "hfrepro-sft") is used, under the token's
    user name, when --push_to_hub comes without --hub_model_id.
    """
    push, repo_id, private, token = False, None, False, None
    for a in parsed:
        if a is None:
            continue
        push = push or bool(getattr(a, "push_to_hub", False))
        repo_id = repo_id or getattr(a, "hub_model_id", None)
        private = private or bool(getattr(a, "hub_private_repo", False) or False)
        if getattr(a, "hub_token", None):
            token = token or a.hub_token
            a.hub_token = None  # keep it out of training_args.bin and saved configs
        if hasattr(a, "push_to_hub") and hasattr(a, "per_device_train_batch_size"):
            a.push_to_hub = False  # we push once, at the end, ourselves
    if not push:
        return None
    return validate_push(repo_id or default_name, private, token=token)


def validate_push(repo_id: str | None, private: bool = False, token: str | None = None,
                  repo_type: str = "model") -> HubRequest:
    """Check everything a push needs, before any work or upload starts; raise one clear UserError if not.

    Order: repo id syntax, a token, offline mode / the Hub reachable, then `whoami` (token valid, may write,
    may write to that namespace). A repo id without a namespace gets the token's user name.
    """
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    flag = "--hub_model_id" if repo_type == "model" else "--repo-id"
    if not repo_id:
        raise UserError("pushing to the Hub needs a repo id", fix=f"pass {flag} user/name")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise UserError(f"invalid Hub repo id {repo_id!r}: {e}",
                        fix="use the form user/name: letters, digits, '-', '_', '.'; at most 96 characters") from None
    explicit = token
    token = token or get_token()
    if not token:
        raise UserError("no Hugging Face token: pushing needs one (nothing was uploaded)",
                        fix="run `hf auth login`, or set HF_TOKEN in the environment (hfrepro never writes it "
                            "to disk)")
    offline = [v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # what huggingface_hub itself honours
               if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")]
    if offline:
        raise UserError(f"cannot push to {repo_id!r}: offline mode is set ({'='.join([offline[0], '1'])}) "
                        "(nothing was uploaded)",
                        fix="unset those variables on a machine that reaches the Hub, or push later: "
                            f"hfrepro push RUN_DIR --repo-id {repo_id}")
    if not _reachable(endpoint()):
        raise UserError(f"cannot push to {repo_id!r}: the Hub ({endpoint()}) is not reachable from this machine "
                        "(nothing was uploaded)",
                        fix=f"push later from a machine with access: hfrepro push RUN_DIR --repo-id {repo_id}")
    who = _whoami(token, repo_id)
    user = who.get("name")
    if "/" not in repo_id:
        if not user:
            raise UserError(f"Hub repo id {repo_id!r} has no namespace", fix="use the form user/name")
        repo_id = f"{user}/{repo_id}"
    role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise UserError(f"your Hugging Face token is read-only: it cannot create or write {repo_id!r} "
                        "(nothing was uploaded)", fix="create a token with write access at "
                                                      "https://huggingface.co/settings/tokens and log in with it")
    namespaces = {user, *(o.get("name") for o in who.get("orgs") or [] if isinstance(o, dict))} - {None}
    ns = repo_id.split("/")[0]
    if namespaces and ns not in namespaces:
        raise UserError(f"your token belongs to {user!r}, which cannot write under {ns!r} (nothing was uploaded)",
                        fix=f"use one of your namespaces: {', '.join(sorted(namespaces))}, e.g. {user}/"
                            f"{repo_id.split('/')[1]}")
    return HubRequest(repo_id=repo_id, private=private, token=explicit)


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """One TCP connect to the Hub endpoint (hubenv.hub_reachable also says False under HF_DATASETS_OFFLINE,
    which does not concern pushes, and switches the process offline)."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    try:
        with socket.create_connection((u.hostname, u.port or (443 if u.scheme == "https" else 80)), timeout=timeout):
            return True
    except OSError:
        return False


def _api(token: str | None = None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint(), token=token)


def _whoami(token: str, repo_id: str) -> dict:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return _api(token).whoami(token=token)
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status == 401:
            raise UserError("the Hugging Face token was refused by the Hub (invalid or expired) "
                            "(nothing was uploaded)",
                            fix="log in again with `hf auth login`, or set a valid HF_TOKEN") from None
        raise UserError(f"cannot check the token with the Hub before pushing to {repo_id!r}: HTTP {status} "
                        "(nothing was uploaded)", fix="try again later") from None
    except OSError as e:
        raise UserError(f"cannot reach the Hub to push to {repo_id!r}: {type(e).__name__} (nothing was uploaded)",
                        fix="check the connection, or push later: hfrepro push RUN_DIR --repo-id " + repo_id) from None


# --- what a push uploads ----------------------------------------------------------------------------------

# Never uploaded: training state (resumable checkpoints, optimizer, RNG), the lock, scratch files.
EXCLUDE_DIRS = re.compile(r"^(checkpoint-\d+|checkpoints|runs|__pycache__|wandb|\..*)$")
EXCLUDE_FILES = re.compile(r"^(\..*|.*\.tmp|.*\.lock|optimizer\.(pt|bin)|scheduler\.pt|rng_state.*\.pth|"
                           r"training_args\.bin|trainer_state\.json|scaler\.pt|status\.json)$")
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".kv"}  # .kv: gensim KeyedVectors.save
MODEL_FILES = ("config.json", "adapter_config.json")


@dataclass
class UploadPlan:
    """Exactly what one commit will upload: (path in repo, local file or bytes)."""
    repo_type: str
    files: list[tuple[str, Path | bytes]]
    notes: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [p for p, _ in self.files]

    def size(self) -> int:
        return sum(len(s) if isinstance(s, bytes) else s.stat().st_size for _, s in self.files)

    def describe(self) -> str:
        lines = [f"{len(self.files)} file(s), {human_size(self.size())}, as one commit to a {self.repo_type} repo:"]
        for p, s in self.files:
            n = len(s) if isinstance(s, bytes) else s.stat().st_size
            lines.append(f"  {p}  ({human_size(n)})")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _walk(folder: Path) -> Iterable[Path]:
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if _tensorboard_log(rel):  # runs/<date>/events.out.tfevents.*: the Hub's "Training metrics" tab
            yield p
            continue
        if any(EXCLUDE_DIRS.match(part) for part in rel.parts[:-1]):
            continue
        if p.is_file() and not EXCLUDE_FILES.match(p.name):
            yield p


def _tensorboard_log(rel: Path) -> bool:
    return len(rel.parts) >= 2 and rel.parts[0] == "runs" and rel.name.startswith("events.out.tfevents.") and \
        not any(part.startswith(".") for part in rel.parts)


def is_model_folder(folder: Path) -> bool:
    return any((folder / f).is_file() for f in MODEL_FILES) or any(folder.glob("*.safetensors"))


def plan_upload(folder: str | Path, repo_type: str = "model", repo_id: str | None = None) -> UploadPlan:
    """Decide and check what pushing `folder` uploads, without any network. Raises UserError on problems.

    A run folder is the repository: the model (config.json, safetensors, tokenizer, README.md card) with the
    run's record beside it (config.yaml, metrics.json, log.jsonl, plots). Checkpoints, optimizer state, the
    lock and hidden or temporary files are never uploaded; pickled weights are refused.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"nothing to push: {folder} is not a folder", fix="give a run folder or a model folder")
    files: list[tuple[str, Path | bytes]] = [(p.relative_to(folder).as_posix(), p) for p in _walk(folder)]
    notes: list[str] = []
    if not files:
        raise UserError(f"nothing to push in {folder}: the folder is empty", where=str(folder))
    paths = {p for p, _ in files}
    if repo_type == "model":
        if not is_model_folder(folder):
            raise UserError(f"nothing to push in {folder}: no model files", where=str(folder),
                            fix="give a run folder or a model folder (config.json and weights)")
        bad = [p for p, s in files if isinstance(s, Path) and _is_pickle(s)]
        if bad:
            raise UserError(f"refusing to push pickled weights ({', '.join(bad[:4])}): they can run code when "
                            "loaded", where=str(folder),
                            fix="save with safetensors: model.save_pretrained(dir, safe_serialization=True)")
        if "README.md" not in paths:
            files.append(("README.md", _fallback_card(folder, repo_id).encode()))
            notes.append("the folder has no README.md: a minimal model card was generated for the upload "
                         "(write one with hfrepro.cards.write_model_card)")
    elif "README.md" not in paths:
        raise UserError(f"a dataset repo needs its card: no README.md in {folder}", where=str(folder),
                        fix="export with hfrepro.hub.export_dataset(data, folder, card=...)")
    return UploadPlan(repo_type, sorted(files, key=lambda x: x[0]), notes)


def _is_pickle(p: Path) -> bool:
    if p.suffix.lower() in PICKLE_SUFFIXES:
        return True
    if p.suffix.lower() in (".bin", ".model"):
        with open(p, "rb") as f:
            head = f.read(4)
        return head.startswith(b"PK\x03\x04") or (len(head) > 1 and head[0] == 0x80 and 1 <= head[1] <= 5)
    return False


def _fallback_card(folder: Path, repo_id: str | None) -> str:
    metrics = read_json_or_empty(folder / "metrics.json")
    config = None
    if (folder / "config.yaml").is_file():
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    title = (repo_id or folder.resolve().name).split("/")[-1]
    return str(model_card(title=title, metrics=metrics, config=config, model_dir=folder,
                          description="Pushed with `hfrepro push`; the run did not write its own card."))


def _known_tokens(extra: str | None = None) -> list[str]:
    from huggingface_hub import get_token
    found = {extra, get_token(), os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")}
    return sorted(t for t in found if t and len(t) >= 8)


def _contains(path_or_bytes: Path | bytes, needles: list[bytes]) -> bool:
    if isinstance(path_or_bytes, bytes):
        return any(n in path_or_bytes for n in needles)
    keep = max(len(n) for n in needles) - 1
    tail = b""
    with open(path_or_bytes, "rb") as f:
        while chunk := f.read(1 << 22):
            buf = tail + chunk
            if any(n in buf for n in needles):
                return True
            tail = buf[-keep:] if keep else b""
    return False


def check_no_token(plan: UploadPlan, token: str | None = None) -> None:
    """Refuse to upload a file that contains the Hugging Face token (of the request or the environment)."""
    needles = [t.encode() for t in _known_tokens(token)]
    if not needles:
        return
    leaked = [p for p, src in plan.files if _contains(src, needles)]
    if leaked:
        raise UserError(f"refusing to push: {', '.join(leaked[:4])} contain(s) your Hugging Face token",
                        fix="remove the token from those files (and revoke it if it was shared); nothing was "
                            "uploaded")


def _operations(plan: UploadPlan, repo_id: str) -> list:
    from huggingface_hub import CommitOperationAdd

    ops = []
    for path, src in plan.files:
        if path == "README.md":  # show the real repo id in the card's loading snippet
            text = src.decode() if isinstance(src, bytes) else src.read_text(encoding="utf-8")
            src = text.replace(REPO_PLACEHOLDER, repo_id).encode()
        ops.append(CommitOperationAdd(path_in_repo=path, path_or_fileobj=src if isinstance(src, bytes) else str(src)))
    return ops


def _check_card(plan: UploadPlan) -> None:
    src = dict(plan.files).get("README.md")
    if src is None:
        return
    text = src.decode() if isinstance(src, bytes) else src.read_text(encoding="utf-8")
    problems = (check_model_card(text) if plan.repo_type == "model"
                else check_dataset_card(text, required=("license",)))
    if problems:
        raise UserError("the repo card (README.md) is not valid: " + "; ".join(problems),
                        where=str(src) if isinstance(src, Path) else "README.md", fix="fix the card, then push again")


def push_plan(plan: UploadPlan, req: HubRequest, commit_message: str = "Upload from hfrepro") -> str:
    """Upload `plan` as ONE commit (create the repo if needed). Returns the commit URL.

    All checks (card, token in files) run before anything is sent. If the commit fails and this call
    created the repo, the empty repo is deleted again, so a failed push leaves nothing behind.
    """
    from huggingface_hub.errors import HfHubHTTPError

    _check_card(plan)
    check_no_token(plan, req.token)
    api = _api(req.token)
    created = False
    try:
        existed = api.repo_exists(req.repo_id, repo_type=plan.repo_type)
        api.create_repo(req.repo_id, repo_type=plan.repo_type, private=req.private, exist_ok=True)
        created = not existed
        info = api.create_commit(req.repo_id, operations=_operations(plan, req.repo_id),
                                 commit_message=commit_message, repo_type=plan.repo_type)
    except (HfHubHTTPError, OSError, ValueError) as e:
        cleanup = ""
        if created:
            try:
                api.delete_repo(req.repo_id, repo_type=plan.repo_type)
                cleanup = "; the repo this push had created was deleted again"
            except Exception:  # noqa: BLE001 - report the original failure
                cleanup = "; the (empty) repo this push created may remain"
        status = getattr(getattr(e, "response", None), "status_code", None)
        why = f"HTTP {status}" if status else type(e).__name__
        raise UserError(f"push to {req.repo_id!r} failed ({why}): nothing was committed{cleanup}",
                        fix="check your access to that namespace and the connection, then run the same command "
                            "again") from None
    return str(getattr(info, "commit_url", info))


def push_folder(folder: str | Path, req: HubRequest, repo_type: str = "model",
                commit_message: str = "Upload from hfrepro") -> str:
    """Push a run folder, model folder or exported dataset folder as one commit. Returns the commit URL."""
    plan = plan_upload(folder, repo_type=repo_type, repo_id=req.repo_id)
    return push_plan(plan, req, commit_message=commit_message)


# --- datasets ---------------------------------------------------------------------------------------------

def _card_text(card: Any) -> str:
    if isinstance(card, Path) or (isinstance(card, str) and "\n" not in card and card.endswith(".md")):
        return Path(card).read_text(encoding="utf-8")
    return str(card)


def export_dataset(data: Any, folder: str | Path, card: Any) -> Path:
    """Write `data` (a DatasetDict or Dataset) as a Hub dataset repository folder, atomically:
    data/<split>-00000-of-00001.parquet per split, and README.md = `card` (a path, text or DatasetCard)
    with a `configs:` entry mapping each split to its file, so `load_dataset("user/name")` finds them."""
    from datasets import Dataset, DatasetDict
    from huggingface_hub import DatasetCard


    dd = DatasetDict({"train": data}) if isinstance(data, Dataset) else data
    parsed = DatasetCard(_card_text(card))
    meta = parsed.data.to_dict()
    problems = check_dataset_card(str(parsed))
    if problems:
        raise UserError("the dataset card is not valid: " + "; ".join(problems), fix="fix the card")
    meta["configs"] = [{"config_name": "default",
                        "data_files": [{"split": s, "path": f"data/{s}-*"} for s in dd]}]
    from huggingface_hub import DatasetCardData
    parsed.data = DatasetCardData(**meta)
    with atomic_dir(folder) as tmp:
        (tmp / "data").mkdir()
        for split, ds in dd.items():
            ds.to_parquet(str(tmp / "data" / f"{split}-00000-of-00001.parquet"))
        (tmp / "README.md").write_text(str(parsed), encoding="utf-8")
    return Path(folder)


def push_dataset(data: Any, req: HubRequest, card: Any, commit_message: str = "Upload dataset from hfrepro") -> str:
    """Export `data` with its card (see `export_dataset`) and push it as a dataset repo, in one commit."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hfrepro-push-") as tmp:
        folder = export_dataset(data, Path(tmp) / "repo", card)
        return push_folder(folder, req, repo_type="dataset", commit_message=commit_message)
