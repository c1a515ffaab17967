"""How long does asking for a Hub model take to fail on a machine without the Hub?

hfrepro probes the endpoint once (one TCP connect, 3 s timeout) and fails at once naming the embedded
alternative. `--raw` also times plain `AutoModelForCausalLM.from_pretrained("gpt2")` without offline
variables (STACK.md measured about 47 s on this kind of machine).

    .venv/bin/python bench/hub_failfast.py [--raw]
Writes bench/results/hub_failfast.json.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

CODE_HFREPRO = ("from hfrepro.models import resolve\ntry:\n    resolve('gpt2')\n"
                "except Exception as e:\n    print(type(e).__name__)")
CODE_RAW = ("from transformers import AutoConfig\ntry:\n    AutoConfig.from_pretrained('gpt2')\n"
            "except Exception as e:\n    print(type(e).__name__)")


def timed(code: str) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                             "HF_DATASETS_OFFLINE")}
    t = time.time()
    r = subprocess.run([sys.executable, "-c", "import time; t=time.time()\n" + code +
                        "\nprint(round(time.time()-t, 2))"], capture_output=True, text=True, env=env)
    lines = r.stdout.strip().splitlines()
    return float(lines[-1]) if lines else time.time() - t, (lines[0] if lines else r.stderr[-200:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", action="store_true", help="also time plain transformers (slow: ~47 s here)")
    a = ap.parse_args()
    rows = []
    s, err = timed(CODE_HFREPRO)
    rows.append({"what": "hfrepro.models.resolve('gpt2')", "seconds_to_fail": s, "error": err})
    if a.raw:
        s, err = timed(CODE_RAW)
        rows.append({"what": "AutoConfig.from_pretrained('gpt2'), no offline vars", "seconds_to_fail": s,
                     "error": err})
    from hfrepro.fsutil import atomic_write_json
    from hfrepro.report import md_table
    atomic_write_json(Path("bench/results/hub_failfast.json"), rows)
    print(md_table(rows, digits=2))


if __name__ == "__main__":
    main()
