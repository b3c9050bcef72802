"""`python -m mailbot` runs the mailbot command."""

if __name__ == "__main__":
    # Analysis workers (spawned) import this module as __mp_main__: they need none of the
    # command's imports (the database, templates, IMAP and SMTP), which cost a second each.
    from mailbot.heap import collect_less_often, collections_paused

    collect_less_often()
    with collections_paused():
        from mailbot.cli import run

    run()
