"""Sharing costs on the real embedded assets: what a push checks and prepares before anything is sent.

    python bench/sharing.py            # writes bench/results/sharing.json, prints a Markdown table

1. plan + token scan of the embedded SmolLM2 folder (517 MB fp32 safetensors): every file is read once
   to make sure the Hugging Face token is not inside (a fake HF_TOKEN is set for the measurement).
2. export of embedded datasets to a Hub dataset repo folder (Parquet per split + card).
Nothing is uploaded; the asset cache is only read.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def main() -> None:
    from hfrepro import assets, data, hub
    from hfrepro.fsutil import atomic_write_json, dir_size, human_size
    from hfrepro.paths import DATA_CARDS_DIR
    from hfrepro.report import md_table

    os.environ["HF_TOKEN"] = "hf_benchFAKEtokenNotReal00000000"
    rows = []
    model = assets.path("smollm2-135m-instruct", build=False)
    t0 = time.perf_counter()
    plan = hub.plan_upload(model, repo_id="user/smollm2")
    t1 = time.perf_counter()
    hub.check_no_token(plan)
    t2 = time.perf_counter()
    mb = plan.size() / 2**20
    rows.append({"step": "plan upload of smollm2-135m-instruct", "size": human_size(plan.size()),
                 "files": len(plan.files), "seconds": round(t1 - t0, 3), "MB/s": None})
    rows.append({"step": "token scan of every file", "size": human_size(plan.size()), "files": len(plan.files),
                 "seconds": round(t2 - t1, 3), "MB/s": round(mb / (t2 - t1))})
    import datasets
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("shakespeare", "lo-help-en-ko", "gcide"):
            dd = data.load(name)
            t0 = time.perf_counter()
            folder = hub.export_dataset(dd, Path(tmp) / name, DATA_CARDS_DIR / f"{name}.md")
            dt = time.perf_counter() - t0
            rows.append({"step": f"export dataset {name} (Parquet + card)",
                         "size": f"{human_size(dir_size(assets.path(name) / 'data'))} arrow -> "
                                 f"{human_size(dir_size(folder))}",
                         "files": len(list(folder.rglob('*.*'))), "seconds": round(dt, 3),
                         "MB/s": round(dir_size(assets.path(name) / 'data') / 2**20 / dt)})
    out = Path(__file__).parent / "results" / "sharing.json"
    atomic_write_json(out, {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": rows})
    print(md_table(rows))
    print(f"\n-> {out}")


if __name__ == "__main__":
    main()
