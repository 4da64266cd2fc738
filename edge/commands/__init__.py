"""Every ``edgecam`` command handler: parsed arguments in, exit code out.

The stage packages (capture, vision, clips, outbox, api) never see
``argparse`` or ``edge.config``: a handler here reads the config and hands
the stages plain values. Modules import their heavy dependencies inside the
handler, so ``edgecam --help`` and the stdlib-only ``clips list``/``pull``
stay fast on a laptop. ``edge.central.cli`` holds the central server's own
handlers (a separate program sharing the entry point).
"""
