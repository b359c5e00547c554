"""``epiflow upgrade-store STORE``: convert a pose store written by an older epiflow (schema 1:
one person, no person axis) to this epiflow's schema (2: detection slots and people).

    epiflow upgrade-store S.zarr                  # in place: the new store is written beside,
                                                  # then takes the old one's name
    epiflow upgrade-store S.zarr --out S2.zarr    # a converted copy; S.zarr is kept

In place, a kill leaves the old store or the new one, never a mix (see
:func:`epiflow.store.upgrade_store`); run the command again to finish. A run writing the store
(its lease) refuses the upgrade.
"""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "upgrade-store", help="convert an older pose store (schema 1) to this epiflow's schema",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store", help="the store folder (or, with --out, an fsspec URL)")
    p.add_argument("--out", metavar="NEW", help="write the converted store here and keep the old "
                                                "one (default: convert in place)")
    p.set_defaults(func=run)


def run(args) -> int:
    from epiflow.outputs import check_outputs_not_inputs
    from epiflow.store import upgrade_store
    from epiflow.store_lease import StoreLease
    if args.out:
        check_outputs_not_inputs({"--out": args.out}, {"the store": args.store})
        done = upgrade_store(args.store, args.out)
    else:
        # no run writes it while it is copied
        with StoreLease(args.store, wait_s=0, command="upgrade-store"):
            pass
        done = upgrade_store(args.store)
    for session, what in done.items():
        print(f"  {session}: {what}")
    print(f"upgraded {args.store} -> {args.out or args.store} ({len(done)} entr"
          f"{'y' if len(done) == 1 else 'ies'})")
    return 0
