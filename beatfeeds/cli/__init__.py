"""The `beatfeeds` command line: one short command per domain function, one module per
command group (`cli/incidents.py`, `cli/beats.py`, ...); shared helpers are in
`cli/context.py`."""

from __future__ import annotations

import logging

import click

from beatfeeds.cli import (
    beats,
    db,
    demo,
    incidents,
    jobs,
    mail,
    outbound,
    presets,
    serve,
    settings,
    setup,
    sources,
    users,
)


@click.group()
@click.version_option(package_name="beatfeeds")
def main():
    """beatfeeds: one feed per police beat."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


for _group in (db, incidents, beats, users, sources, presets, outbound, mail, jobs):
    main.add_command(_group.group)
main.add_command(jobs.scheduler)
main.add_command(settings.settings_cmd)
main.add_command(serve.serve)
main.add_command(setup.setup)
main.add_command(demo.demo)

if __name__ == "__main__":
    main()
