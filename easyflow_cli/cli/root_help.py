"""Generated from the Typer app by `python -m easyflow_cli.cli.fast_help`: do not edit."""

ROOT_HELP = "".join([
    'Usage: easyflow [OPTIONS] COMMAND [ARGS]...\n',
    '\n',
    '  easyflow: a cost-aware workflow scheduler. Register workflows from TOML, run\n',
    '  them now or on a schedule, in real-time, balanced or eco mode.\n',
    '\n',
    'Options:\n',
    '  --version   Show the version and exit.\n',
    '  -h, --help  Show this message and exit.\n',
    '\n',
    'Commands:\n',
    '  run       Run a workflow now.\n',
    "  logs      Print the output a run's steps wrote (kept under the state...\n",
    "  daemon    Run the scheduler daemon in the foreground (systemd's...\n",
    '  status    Is the daemon up? Its pools, queue depths and next schedule...\n',
    '  demo      Register the examples, run each once in every mode through a...\n',
    '  bench     Benchmark easyflow on this box, with its own daemon in a...\n',
    '  workflow  Register and inspect workflows (TOML files).\n',
    '  runs      List and inspect runs.\n',
    '  schedule  Schedule workflows: cron, every, at.\n',
    '  report    Reports: costs and savings, latency, pool use.\n',
])
