"""Back the content root up to Drive (and restore it) ON the runtime: rsync under a lock, detached, its log followed.

Standard library only, POSIX only (fork, setsid, flock, /proc), except ``protocol``, what the laptop shares with
the runner (portable; this ``__init__`` imports nothing, so the laptop can import ``colab_bootstrap.sync.protocol``).
``colabssh sync`` runs ``colab_bootstrap.sync.main`` with the runtime's python (``colab_bootstrap.ship``: the package
cached there, or sent); the cell runs the same sync on a timer (``periodic.start_periodic``).

The modules, in the order a run meets them: ``main`` (command line) -> ``runs`` (start, attach, cancel) ->
``request`` -> ``plan`` (checks, with ``drive`` and ``scan``; rsync's command line) -> ``jobs`` (the lock and the
job folders; ``procs`` reads /proc) -> ``worker`` (forked, runs rsync) -> ``follow`` (the log as JSON events,
read by ``output``).
``files`` holds the safe opens and the state writer; ``config`` the shared names and caps.

One run, from the laptop, in ONE remote command (each extra command costs a shell start):

1. take the lock ``STATE/sync/lock`` (``flock``, so a killed run releases it; the file records its holder's pid and
   process start time): a live holder is refused by name, one that is gone is taken over with a note;
2. check: the Drive folder is there (on Colab: a ``fuse.drive`` mount in ``/proc/self/mountinfo``), paths are
   inside the content root, ``--delete`` has a non-empty source (a walk that stops at the first file), there is
   room for the copy (a bound from the source filesystem's bytes in use; only when that does not fit, rsync's own
   dry run gives the exact figure). A backup walks no tree in Python: rsync does the walking and filtering;
3. fork a worker into a session of its own (``setsid``, output to the job's log) that inherits the lock and runs
   rsync; a dropped SSH link does not cut it short (before the fork, a laptop gone or a SIGTERM stops the run);
4. follow the job's log, turning rsync's output into JSON events on stdout (and warnings counted from it: many
   small files copied, links skipped), until the worker has released the lock and written the result; exit with
   that run's exit code.

Every file it opens (the user's ``.colabsshignore``, its own state) is opened without blocking and only when it is
a regular file, and control files are read up to a cap (``open_regular``, ``read_small``): a FIFO, a link to
/dev/zero, a socket or a folder in their place is refused with one line, never waited on or read without end.
``cancel --token`` is the laptop's Ctrl-C: it stops the run that laptop started, whatever its phase.

rsync writes every file to a temp file in ``.colabssh-tmp`` at the top of the destination (same filesystem, so
the final step is a rename) and never uses ``--inplace``: no partial file ever appears under its final name, and
temp files a killed run leaves behind are removed by the next run. Deletions only with
``--delete``, and then deleted and replaced files are moved into a dated trash folder inside the Drive folder.
"""
