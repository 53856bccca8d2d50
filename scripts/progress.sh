# Progress for the set-up scripts (sourced by scripts/setup.sh): a slow step is never silent.
# step "WHAT (size, time)" COMMAND...: say what is being done, run COMMAND with a "still at it" line every
# COLABSSH_SETUP_TICK seconds (10) while it runs, then say how long it took. Returns COMMAND's exit status.

say() { echo "setup: $*" >&2; }

step() {
    local what=$1; shift
    local start=$SECONDS ticker rc=0 tick=${COLABSSH_SETUP_TICK:-10}
    say "$what..."
    # sleep gets no stdout/stderr: a pipe reading this script's output must not wait for it after the step ends
    ( while sleep "$tick" </dev/null >/dev/null 2>&1; do
          echo "setup:   ... still at it ($((SECONDS - start)) s)" >&2
      done ) &
    ticker=$!
    "$@" || rc=$?
    kill "$ticker" 2>/dev/null || true
    wait "$ticker" 2>/dev/null || true
    if [ "$rc" -eq 0 ]; then say "  done in $((SECONDS - start)) s"; fi
    return "$rc"
}
