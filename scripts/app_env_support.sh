# Shell functions shared by scripts/setup_deploy_env.sh and scripts/setup_label_env.sh (sourced, not run).
# The sourcing script sets: TAG (log prefix), VENV, PYTHON, py ($VENV/bin/python), stamp, want.

# true when the stamp of the last complete setup matches $want and FORCE is not 1
stamp_is_current() { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ "${FORCE:-0}" != 1 ]; }

# create $VENV with $PYTHON unless it has an interpreter already
make_venv() {
    if [ ! -x "$py" ]; then
        echo "[$TAG] creating $VENV with $("$PYTHON" --version)"
        "$PYTHON" -m venv "$VENV"
    fi
}

# pip install into $VENV, quietly; this machine's pip configuration prints one "WARNING: Location ..."
# line per package: hidden
pip_install() { "$py" -m pip install --quiet --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2); }

# have NAME VERSION: true when $VENV has distribution NAME at VERSION (a local "+..." suffix ignored)
have() { "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1').split('+')[0] != '$2')" 2>/dev/null; }

# write_constraints REQUIREMENT...: a pip constraints file (removed at exit) in $constraints
write_constraints() {
    constraints="$(mktemp)"
    trap 'rm -f "$constraints"' EXIT
    printf '%s\n' "$@" >"$constraints"
}
