"""The long-running daemon, one module per responsibility.

service  the daemon as a whole: lock, start, reload, the request handlers, shutdown
loop     the event loop: the one place that waits, and how long
control  the control socket and its table of request handlers
signals  SIGTERM/SIGINT stop, SIGHUP reload: flags, and a wake-up pipe
throttled_log  warnings that may repeat: a line per interval, with a count
dispatch claims from the queue, orders to the pools
reports  what the workers' reports change
settlement  the rules for a run's end: finish, retry, requeue
drain    stopping without losing a run: none → grace → stopping → killing
recovery runs a previous daemon left running
foreground_watch  runs a terminal executes, settled when their `easyflow run` dies
pruning  finished runs past keeping rolled up and pruned, a batch at a time, when quiet
summarizing  finished runs of the hours that are over added up, a batch at a time, when quiet
"""

from easyflow_cli.runtime.daemon.service import Daemon

__all__ = ["Daemon"]
